-- Least-privilege PostgreSQL set-up for the PIT server (docs/OPERATIONS.md, "PostgreSQL roles"). Run once, and again
-- after adding a role, as a superuser (or a role with CREATEROLE and CREATEDB) connected to any database:
--
--   psql -v ON_ERROR_STOP=1 -f deploy/postgres-roles.sql "host=db.example user=postgres dbname=postgres"
--
-- It makes two login roles and one database:
--   owner   (default pit_owner)   owns the database, its schema and every table: `Pit.Server migrate` runs as it
--                                 (schema migrations, audit-log day partitions). Never used by a running server.
--   runtime (default pit_runtime) what the servers connect as: SELECT, INSERT, UPDATE, DELETE on the tables and the
--                                 sequences' nextval. No CREATE on the schema or database, no TEMP, no TRUNCATE,
--                                 owns nothing, so it can change no table's shape.
-- Other names: psql -v database=pit_test -v owner=… -v runtime=…. Passwords are not set here (they would end up in
-- shell history): set them with psql's \password, or use certificate or peer authentication (pg_hba.conf).
-- Safe to run again: it creates what is missing and re-applies the privileges.

\set ON_ERROR_STOP 1
\if :{?database}
\else
  \set database pit
\endif
\if :{?owner}
\else
  \set owner pit_owner
\endif
\if :{?runtime}
\else
  \set runtime pit_runtime
\endif

SELECT format('CREATE ROLE %I LOGIN', :'owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'runtime') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'runtime') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'database', :'owner', 'UTF8')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec

-- Only these two roles may connect; nobody may create temporary tables (PUBLIC may, by default).
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE :"database" TO :"owner";
GRANT CONNECT ON DATABASE :"database" TO :"runtime";

\connect :"database"

-- The tables live in schema public. Before PostgreSQL 15 every role may create in it: only the owner may here.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"runtime";

-- Tables and sequences that exist already (a database migrated before these roles existed; run
-- `REASSIGN OWNED BY <old role> TO pit_owner` first if another role owns them) ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"runtime";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"runtime";
-- ... and every table and sequence the owner creates from now on: migrations, and the audit log's day partitions.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"runtime";
