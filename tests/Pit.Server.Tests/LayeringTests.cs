using System.Reflection;
using System.Reflection.Emit;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Upsert;

namespace Pit.Server.Tests;

/// <summary>
/// The folders of Pit.Server depend downwards only: Upsert (the pure apply rules) is the bottom and uses no other part
/// of the server; Storage uses Upsert but never Processing, which drives it. Read from the compiled assembly, IL
/// included, so a fully qualified name or a call inside a method body counts as much as a signature does.
/// </summary>
public sealed class LayeringTests
{
    private const string Server = "Pit.Server";
    private const string Upsert = "Pit.Server.Upsert";
    private const string Storage = "Pit.Server.Storage";
    private const string Processing = "Pit.Server.Processing";

    private static readonly Assembly ServerAssembly = typeof(PitApp).Assembly;

    [Fact]
    public void Upsert_uses_no_other_part_of_the_server()
    {
        var upward = References(type => InNamespace(type, Upsert))
            .Where(r => InNamespace(r.Used, Server) && !InNamespace(r.Used, Upsert))
            .Select(Describe)
            .ToList();
        Assert.Empty(upward);
    }

    [Fact]
    public void Storage_never_uses_Processing()
    {
        var upward = References(type => InNamespace(type, Storage))
            .Where(r => InNamespace(r.Used, Processing))
            .Select(Describe)
            .ToList();
        Assert.Empty(upward);
    }

    [Fact]
    public void The_scan_sees_references_in_signatures_and_in_method_bodies()
    {
        // Without this, a scan that finds nothing at all would pass the two tests above.
        var processing = References(type => type == typeof(SubmissionProcessor)).Select(r => r.Used).ToHashSet();
        Assert.Contains(typeof(ISubmissionQueueStore), processing); // a constructor parameter
        // PostgresApply.cs calls ApplyPlanner.Plan in an async method, i.e. in the IL of a nested state machine.
        var apply = References(type => type == typeof(PostgresPitStore) || type.DeclaringType == typeof(PostgresPitStore))
            .Select(r => r.Used).ToHashSet();
        Assert.Contains(typeof(ApplyPlanner), apply);
    }

    private static string Describe((Type User, Type Used) reference) => $"{reference.User.FullName} uses {reference.Used.FullName}";

    private static bool InNamespace(Type type, string ns) =>
        type.Namespace is { } name && (name == ns || name.StartsWith(ns + ".", StringComparison.Ordinal));

    /// <summary>Every (type, type it uses) of the server's types that <paramref name="select"/> picks, nested and compiler-made ones included.</summary>
    private static IEnumerable<(Type User, Type Used)> References(Func<Type, bool> select)
    {
        foreach (var type in ServerAssembly.GetTypes().Where(select))
        {
            var used = new HashSet<Type>();
            foreach (var t in UsedBy(type))
            {
                Collect(t, used);
            }

            foreach (var t in used.Where(t => t.Assembly == ServerAssembly && t != type))
            {
                yield return (type, t);
            }
        }
    }

    private const BindingFlags Declared =
        BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static IEnumerable<Type?> UsedBy(Type type)
    {
        yield return type.BaseType;
        foreach (var i in type.GetInterfaces())
        {
            yield return i;
        }

        foreach (var a in type.CustomAttributes)
        {
            yield return a.AttributeType;
        }

        foreach (var f in type.GetFields(Declared))
        {
            yield return f.FieldType;
        }

        foreach (var p in type.GetProperties(Declared))
        {
            yield return p.PropertyType;
        }

        foreach (var e in type.GetEvents(Declared))
        {
            yield return e.EventHandlerType;
        }

        foreach (var method in type.GetMethods(Declared).Cast<MethodBase>().Concat(type.GetConstructors(Declared)))
        {
            if (method is MethodInfo m)
            {
                yield return m.ReturnType;
            }

            foreach (var p in method.GetParameters())
            {
                yield return p.ParameterType;
            }

            foreach (var a in method.CustomAttributes)
            {
                yield return a.AttributeType;
            }

            foreach (var t in BodyReferences(method))
            {
                yield return t;
            }
        }
    }

    /// <summary>The local variable types of <paramref name="method"/> and every type, field or method its IL names.</summary>
    private static IEnumerable<Type?> BodyReferences(MethodBase method)
    {
        var body = method.GetMethodBody();
        if (body is null)
        {
            yield break;
        }

        foreach (var local in body.LocalVariables)
        {
            yield return local.LocalType;
        }

        var il = body.GetILAsByteArray() ?? [];
        var typeArguments = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (var at = 0; at < il.Length;)
        {
            var code = il[at] == 0xFE ? TwoByte[il[at + 1]] : OneByte[il[at]];
            at += code.Size;
            var operand = OperandSize(code.OperandType, il, at);
            if (code.OperandType is OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType)
            {
                var member = method.Module.ResolveMember(BitConverter.ToInt32(il, at), typeArguments, methodArguments);
                switch (member)
                {
                    case Type t:
                        yield return t;
                        break;
                    case FieldInfo f:
                        yield return f.DeclaringType;
                        yield return f.FieldType;
                        break;
                    case MethodBase m:
                        yield return m.DeclaringType;
                        if (m is MethodInfo { IsGenericMethod: true } generic)
                        {
                            foreach (var a in generic.GetGenericArguments())
                            {
                                yield return a;
                            }
                        }

                        break;
                }
            }

            at += operand;
        }
    }

    private static int OperandSize(OperandType type, byte[] il, int at) => type switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, at)),
        _ => 4,
    };

    private static readonly OpCode[] OneByte = OpCodeTable(twoByte: false);
    private static readonly OpCode[] TwoByte = OpCodeTable(twoByte: true);

    /// <summary>The opcodes by their (last) byte: one-byte ones, or those after the 0xFE prefix.</summary>
    private static OpCode[] OpCodeTable(bool twoByte)
    {
        var table = new OpCode[256];
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var code = (OpCode)field.GetValue(null)!;
            if ((code.Size == 2) == twoByte)
            {
                table[(byte)(code.Value & 0xFF)] = code;
            }
        }

        return table;
    }

    /// <summary>Adds <paramref name="type"/> and every type it is made of (element types, generic arguments).</summary>
    private static void Collect(Type? type, HashSet<Type> into)
    {
        if (type is null || type.IsGenericParameter)
        {
            return;
        }

        if (type.HasElementType)
        {
            Collect(type.GetElementType(), into);
            return;
        }

        if (type.IsGenericType && !type.IsGenericTypeDefinition)
        {
            foreach (var a in type.GetGenericArguments())
            {
                Collect(a, into);
            }

            type = type.GetGenericTypeDefinition();
        }

        if (into.Add(type) && type.IsNested)
        {
            // A nested type names its outer one (a Picture of ApplyPlanner is ApplyPlanner's).
            Collect(type.DeclaringType, into);
        }
    }
}
