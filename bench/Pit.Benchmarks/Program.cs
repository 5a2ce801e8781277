using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Pit.Benchmarks.AuthenticationBenchmarks).Assembly).Run(args);
