-- The AntDB shim: what the product reads from, or relies on in, AntDB, rebuilt on Debian's
-- PostgreSQL for tests. Installed by tests/support/pgnodes.py into `template1` and
-- `postgres` of every vanilla node, once, in one transaction per database. Never product code.
--
-- What it provides and why:
-- * public.pgxc_node: AntDB's node catalog (same columns), with AntDB's refusals as
--   constraints and a trigger (unique name, known type, one primary, node_id = hash of name).
-- * public.pgxc_pool_reload(): like AntDB, the moment a coordinator starts using changed
--   pgxc_node hosts/ports. Here: (re)creates one postgres_fdw server per peer node and
--   copies host/port into it. Until then the old address stays in use, as with AntDB's pooler.
-- * public.pg_settings: pg_catalog.pg_settings plus the AntDB-only settings (pgxc_node_name,
--   adb_node_type, agtm_host, agtm_port, AntDB-only parameters). The backend writes them as
--   `antdb_shim.*` placeholder settings into the config on every start; the database's
--   search_path puts public before pg_catalog so this view shadows the catalog's.
-- * Distribution: on a coordinator-type node, CREATE TABLE in schema public becomes one
--   real table per datanode (plus `xc_node_id`, stamped with the datanode's node_id) and,
--   on every coordinator, a table hash-partitioned over postgres_fdw partitions pointing at
--   them. DROP TABLE propagates the same way. Remote DDL runs through dblink in remote
--   transactions that commit only after every node has accepted it.
--
-- The superuser's password lives only in the user mapping of server `antdb_shim_credentials`
-- (created by the backend) and the copies made for each peer server.

CREATE SCHEMA antdb_shim;
COMMENT ON SCHEMA antdb_shim IS 'test-side AntDB emulation (tests/support/antdb_shim.sql)';
CREATE EXTENSION postgres_fdw SCHEMA antdb_shim;
CREATE EXTENSION dblink SCHEMA antdb_shim;
CREATE SERVER antdb_shim_credentials FOREIGN DATA WRAPPER postgres_fdw;
COMMENT ON SERVER antdb_shim_credentials IS 'holds the superuser credentials copied into every pgxc_<node> server';

-- ------------------------------------------------------------------ settings

CREATE FUNCTION antdb_shim.setting(p_name text) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT pg_catalog.current_setting('antdb_shim.' || p_name, true) $$;

CREATE FUNCTION antdb_shim.self_name() RETURNS name
LANGUAGE sql STABLE AS $$ SELECT coalesce(antdb_shim.setting('pgxc_node_name'), '')::name $$;

CREATE FUNCTION antdb_shim.is_coordinator() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(antdb_shim.setting('adb_node_type'), '') IN ('gtm_coord', 'coordinator')
$$;

CREATE FUNCTION antdb_shim.in_shim() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT coalesce(antdb_shim.setting('internal'), '') = 'on' $$;

CREATE FUNCTION antdb_shim.settings(OUT name text, OUT setting text, OUT context text, OUT vartype text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT n, antdb_shim.setting(n),
           CASE WHEN n IN ('pgxc_node_name', 'adb_node_type') THEN 'postmaster' ELSE 'sighup' END,
           CASE WHEN n = 'agtm_port' THEN 'integer' ELSE 'string' END
    FROM pg_catalog.unnest(pg_catalog.string_to_array(antdb_shim.setting('names'), ',')) AS n
    WHERE antdb_shim.setting(n) IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_settings s WHERE s.name = n)
$$;

-- Same columns as pg_catalog.pg_settings, whatever this server version has.
DO $$
DECLARE
    cols text;
BEGIN
    SELECT pg_catalog.string_agg(CASE a.attname
            WHEN 'name' THEN 's.name'
            WHEN 'setting' THEN 's.setting'
            WHEN 'category' THEN '''AntDB (vanilla PostgreSQL shim)''::text'
            WHEN 'short_desc' THEN '''AntDB setting emulated by tests/support/antdb_shim.sql''::text'
            WHEN 'context' THEN 's.context'
            WHEN 'vartype' THEN 's.vartype'
            WHEN 'source' THEN '''configuration file''::text'
            WHEN 'reset_val' THEN 's.setting'
            WHEN 'pending_restart' THEN 'false'
            ELSE pg_catalog.format('NULL::%s', pg_catalog.format_type(a.atttypid, a.atttypmod))
        END, ', ' ORDER BY a.attnum)
    INTO cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = 'pg_catalog.pg_settings'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE 'CREATE VIEW public.pg_settings AS SELECT * FROM pg_catalog.pg_settings UNION ALL SELECT '
            || cols || ' FROM antdb_shim.settings() s';
END
$$;
GRANT SELECT ON public.pg_settings TO PUBLIC;

-- ------------------------------------------------------------------ pgxc_node

CREATE TABLE public.pgxc_node (
    node_name name NOT NULL,
    node_type "char" NOT NULL,
    node_port integer NOT NULL,
    node_host name NOT NULL,
    nodeis_primary boolean NOT NULL DEFAULT false,
    nodeis_preferred boolean NOT NULL DEFAULT false,
    nodeis_gtm boolean NOT NULL DEFAULT false,
    node_id integer NOT NULL DEFAULT 0,
    node_master_oid oid NOT NULL DEFAULT 0,
    CONSTRAINT pgxc_node_type_check CHECK (node_type IN ('C', 'D', 'E'))
);
CREATE UNIQUE INDEX pgxc_node_nodename_index ON public.pgxc_node (node_name);
-- Backstop for concurrent writers; the trigger below raises AntDB's own message first.
CREATE UNIQUE INDEX pgxc_node_two_nodes_cannot_be_primary ON public.pgxc_node ((true)) WHERE nodeis_primary;
GRANT SELECT ON public.pgxc_node TO PUBLIC;

-- AntDB hashes the name (hash_any, what hashtext does) and steps past collisions.
CREATE FUNCTION antdb_shim.new_node_id(p_name name) RETURNS integer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    candidate bigint := pg_catalog.hashtext(p_name::text);
    tries integer := 0;
BEGIN
    WHILE EXISTS (SELECT 1 FROM public.pgxc_node WHERE node_id = candidate AND node_name <> p_name) LOOP
        tries := tries + 1;
        IF tries >= 200 THEN
            RAISE EXCEPTION 'Please choose different node name.'
                USING ERRCODE = 'invalid_object_definition',
                      DETAIL = pg_catalog.format('Name "%s" produces a duplicate identifier node_name', p_name);
        END IF;
        candidate := CASE WHEN candidate = 2147483647 THEN -2147483648 ELSE candidate + 1 END;
    END LOOP;
    RETURN candidate::integer;
END
$$;

CREATE FUNCTION antdb_shim.pgxc_node_check() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.node_name <> OLD.node_name THEN
        NEW.node_id := antdb_shim.new_node_id(NEW.node_name);
    END IF;
    IF NEW.nodeis_primary AND NEW.node_type <> 'D' THEN
        RAISE EXCEPTION 'PGXC node %: cannot be a primary node, it has to be a Datanode', NEW.node_name
            USING ERRCODE = 'syntax_error';
    END IF;
    IF NEW.nodeis_preferred AND NEW.node_type <> 'D' THEN
        RAISE EXCEPTION 'PGXC node %: cannot be a preferred node, it has to be a Datanode', NEW.node_name
            USING ERRCODE = 'syntax_error';
    END IF;
    IF NEW.nodeis_primary AND EXISTS (
            SELECT 1 FROM public.pgxc_node p
            WHERE p.nodeis_primary AND (TG_OP = 'INSERT' OR p.node_name <> OLD.node_name)) THEN
        RAISE EXCEPTION 'PGXC node %: two nodes cannot be primary', NEW.node_name
            USING ERRCODE = 'syntax_error';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER pgxc_node_check BEFORE INSERT OR UPDATE ON public.pgxc_node
    FOR EACH ROW EXECUTE FUNCTION antdb_shim.pgxc_node_check();

-- ------------------------------------------------------------------ node DDL equivalents

CREATE FUNCTION antdb_shim.require_superuser(p_what text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'must be superuser to % cluster nodes', p_what USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

CREATE FUNCTION antdb_shim.create_node(p_name text, p_type text, p_host text, p_port integer,
                                       p_primary boolean, p_preferred boolean, p_gtm boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM antdb_shim.require_superuser('create');
    IF EXISTS (SELECT 1 FROM public.pgxc_node WHERE node_name = p_name) THEN
        RAISE EXCEPTION 'PGXC Node %: object already defined', p_name USING ERRCODE = 'duplicate_object';
    END IF;
    IF pg_catalog.octet_length(p_name) >= 64 THEN
        RAISE EXCEPTION 'Node name "%" is too long', p_name USING ERRCODE = 'invalid_object_definition';
    END IF;
    IF p_type NOT IN ('C', 'D') THEN
        RAISE EXCEPTION 'PGXC node %: the vanilla shim creates only coordinators (C) and datanodes (D), not %',
            p_name, p_type USING ERRCODE = 'feature_not_supported';
    END IF;
    IF p_port < 1 OR p_port > 65535 THEN
        RAISE EXCEPTION 'port value is out of range' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    INSERT INTO public.pgxc_node (node_name, node_type, node_port, node_host,
                                  nodeis_primary, nodeis_preferred, nodeis_gtm)
    VALUES (p_name, p_type, p_port, p_host, p_primary, p_preferred, p_gtm);
END
$$;

-- NULL means "not named in the ALTER NODE": the column keeps its value.
CREATE FUNCTION antdb_shim.alter_node(p_name text, p_host text DEFAULT NULL, p_port integer DEFAULT NULL,
                                      p_primary boolean DEFAULT NULL, p_preferred boolean DEFAULT NULL,
                                      p_gtm boolean DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM antdb_shim.require_superuser('change');
    IF NOT EXISTS (SELECT 1 FROM public.pgxc_node WHERE node_name = p_name) THEN
        RAISE EXCEPTION 'PGXC Node %: object not defined', p_name USING ERRCODE = 'undefined_object';
    END IF;
    IF p_host IS NULL AND p_port IS NULL AND p_primary IS NULL AND p_preferred IS NULL AND p_gtm IS NULL THEN
        RAISE EXCEPTION 'No options specified' USING ERRCODE = 'syntax_error';
    END IF;
    IF p_port IS NOT NULL AND (p_port < 1 OR p_port > 65535) THEN
        RAISE EXCEPTION 'port value is out of range' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    UPDATE public.pgxc_node SET
        node_host = coalesce(p_host, node_host),
        node_port = coalesce(p_port, node_port),
        nodeis_primary = coalesce(p_primary, nodeis_primary),
        nodeis_preferred = coalesce(p_preferred, nodeis_preferred),
        nodeis_gtm = coalesce(p_gtm, nodeis_gtm)
    WHERE node_name = p_name;
END
$$;

CREATE FUNCTION antdb_shim.drop_node(p_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM antdb_shim.require_superuser('remove');
    IF NOT EXISTS (SELECT 1 FROM public.pgxc_node WHERE node_name = p_name) THEN
        RAISE EXCEPTION 'PGXC Node %: object not defined', p_name USING ERRCODE = 'undefined_object';
    END IF;
    IF p_name = antdb_shim.self_name() THEN
        RAISE EXCEPTION 'PGXC Node %: cannot drop local node', p_name USING ERRCODE = 'syntax_error';
    END IF;
    DELETE FROM public.pgxc_node WHERE node_name = p_name;
END
$$;

-- ------------------------------------------------------------------ peers (foreign servers)

CREATE FUNCTION antdb_shim.server_name(p_node name) RETURNS name
LANGUAGE sql IMMUTABLE AS $$ SELECT ('pgxc_' || p_node)::name $$;

CREATE FUNCTION antdb_shim.datanodes() RETURNS SETOF public.pgxc_node
LANGUAGE sql STABLE AS $$
    SELECT * FROM public.pgxc_node
    WHERE node_type = 'D' AND node_name <> antdb_shim.self_name() ORDER BY node_name
$$;

CREATE FUNCTION antdb_shim.peer_coordinators() RETURNS SETOF public.pgxc_node
LANGUAGE sql STABLE AS $$
    SELECT * FROM public.pgxc_node
    WHERE node_type = 'C' AND node_name <> antdb_shim.self_name() ORDER BY node_name
$$;

-- The password never reaches a log: only this EXECUTE carries it, and a failure is re-raised
-- with the server name and the original message, without the statement.
CREATE FUNCTION antdb_shim.copy_credentials(p_server name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m record;
    opts text;
BEGIN
    FOR m IN SELECT um.umuser, um.umoptions FROM pg_catalog.pg_user_mapping um
             JOIN pg_catalog.pg_foreign_server s ON s.oid = um.umserver
             WHERE s.srvname = 'antdb_shim_credentials' LOOP
        SELECT pg_catalog.string_agg(pg_catalog.format('%I %L', pg_catalog.split_part(o, '=', 1),
                                     pg_catalog.substr(o, pg_catalog.strpos(o, '=') + 1)), ', ')
        INTO opts FROM pg_catalog.unnest(m.umoptions) AS o;
        BEGIN
            EXECUTE pg_catalog.format('CREATE USER MAPPING FOR %s SERVER %I OPTIONS (%s)',
                CASE WHEN m.umuser = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(m.umuser)) END,
                p_server, opts);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'antdb shim: could not create the user mapping of server %: %', p_server, SQLERRM
                USING ERRCODE = SQLSTATE;
        END;
    END LOOP;
END
$$;

-- Create the peer's server if missing; with p_resync also point it at p_host:p_port.
CREATE FUNCTION antdb_shim.ensure_server(p_node name, p_host text, p_port integer, p_resync boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    srv name := antdb_shim.server_name(p_node);
    opts text[];
BEGIN
    SELECT srvoptions INTO opts FROM pg_catalog.pg_foreign_server WHERE srvname = srv;
    IF NOT FOUND THEN
        EXECUTE pg_catalog.format(
            'CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L, '
            'connect_timeout %L, application_name %L, batch_size %L, fetch_size %L)',
            srv, p_host, p_port::text, pg_catalog.current_database(), '5', 'antdb_shim', '1000', '1000');
        PERFORM antdb_shim.copy_credentials(srv);
    ELSIF p_resync AND NOT (opts @> ARRAY['host=' || p_host, 'port=' || p_port::text]) THEN
        EXECUTE pg_catalog.format('ALTER SERVER %I OPTIONS (SET host %L, SET port %L)', srv, p_host, p_port::text);
    END IF;
END
$$;

CREATE FUNCTION public.pgxc_pool_reload() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT node_name, node_host, node_port FROM public.pgxc_node
             WHERE node_name <> antdb_shim.self_name() ORDER BY node_name LOOP
        PERFORM antdb_shim.ensure_server(r.node_name, r.node_host, r.node_port, true);
    END LOOP;
    RETURN true;
END
$$;

-- ------------------------------------------------------------------ remote sessions (dblink)

CREATE FUNCTION antdb_shim.open_remote(p_node name, p_host text, p_port integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cname text := 'antdb_shim_' || p_node;
BEGIN
    PERFORM antdb_shim.ensure_server(p_node, p_host, p_port, false);
    IF cname = ANY (coalesce(antdb_shim.dblink_get_connections(), '{}')) THEN
        PERFORM antdb_shim.dblink_disconnect(cname);
    END IF;
    PERFORM antdb_shim.dblink_connect(cname, antdb_shim.server_name(p_node));
    PERFORM antdb_shim.dblink_exec(cname, 'BEGIN');
    RETURN cname;
END
$$;

-- Commit the remote transactions once every node has accepted its part, then hang up.
CREATE FUNCTION antdb_shim.commit_remotes(p_conns text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c text;
BEGIN
    FOREACH c IN ARRAY p_conns LOOP
        PERFORM antdb_shim.dblink_exec(c, 'COMMIT');
        PERFORM antdb_shim.dblink_disconnect(c);
    END LOOP;
END
$$;

-- After a failure: drop every remote session this shim opened, which rolls their work back
-- (including a session whose connect succeeded but whose BEGIN did not).
CREATE FUNCTION antdb_shim.abandon_remotes() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c text;
BEGIN
    FOR c IN SELECT x FROM pg_catalog.unnest(antdb_shim.dblink_get_connections()) AS x
             WHERE x LIKE 'antdb\_shim\_%' LOOP
        PERFORM antdb_shim.dblink_disconnect(c);
    END LOOP;
END
$$;

-- ------------------------------------------------------------------ distributed tables

CREATE TABLE antdb_shim.distributed_table (
    relname name PRIMARY KEY,
    dist_key name NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION antdb_shim.partition_name(p_rel name, p_node name) RETURNS name
LANGUAGE sql IMMUTABLE AS $$
    SELECT (pg_catalog.left(p_rel, 30) || '_' || pg_catalog.left(pg_catalog.md5(p_rel || '/' || p_node), 10)
            || '_' || pg_catalog.left(p_node, 20))::name
$$;

-- Datanode side: the table holding this datanode's share, stamped with its node_id.
CREATE FUNCTION antdb_shim.stamp_xc_node_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.xc_node_id := TG_ARGV[0]::integer;
    RETURN NEW;
END
$$;

CREATE PROCEDURE antdb_shim.create_shard_table(p_rel name, p_columns text, p_node_id integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'on', true);
    EXECUTE pg_catalog.format('CREATE TABLE public.%I (%s, xc_node_id integer DEFAULT %s)', p_rel, p_columns, p_node_id);
    EXECUTE pg_catalog.format('CREATE TRIGGER xc_node_id BEFORE INSERT OR UPDATE ON public.%I '
                              'FOR EACH ROW EXECUTE FUNCTION antdb_shim.stamp_xc_node_id(%L)', p_rel, p_node_id);
END
$$;

-- Coordinator side: the table every session sees, one foreign partition per datanode of
-- this node's pgxc_node (name order, so every coordinator routes a key to the same datanode).
CREATE PROCEDURE antdb_shim.build_distributed(p_rel name, p_columns text, p_key name)
LANGUAGE plpgsql AS $$
DECLARE
    dn record;
    n integer;
    i integer := 0;
BEGIN
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'on', true);
    SELECT count(*) INTO n FROM antdb_shim.datanodes();
    IF n = 0 THEN
        RAISE EXCEPTION 'No Datanode defined in cluster' USING ERRCODE = 'undefined_object',
            HINT = 'Register the datanodes in pgxc_node (CREATE NODE) on this coordinator first.';
    END IF;
    EXECUTE pg_catalog.format('CREATE TABLE public.%I (%s, xc_node_id integer) PARTITION BY HASH (%I)',
                              p_rel, p_columns, p_key);
    FOR dn IN SELECT * FROM antdb_shim.datanodes() LOOP
        PERFORM antdb_shim.ensure_server(dn.node_name, dn.node_host, dn.node_port, false);
        EXECUTE pg_catalog.format(
            'CREATE FOREIGN TABLE antdb_shim.%I PARTITION OF public.%I FOR VALUES WITH (MODULUS %s, REMAINDER %s) '
            'SERVER %I OPTIONS (schema_name %L, table_name %L)',
            antdb_shim.partition_name(p_rel, dn.node_name), p_rel, n, i,
            antdb_shim.server_name(dn.node_name), 'public', p_rel);
        i := i + 1;
    END LOOP;
    INSERT INTO antdb_shim.distributed_table (relname, dist_key) VALUES (p_rel, p_key);
END
$$;

CREATE PROCEDURE antdb_shim.forget_distributed(p_rel name)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'on', true);
    EXECUTE pg_catalog.format('DROP TABLE IF EXISTS public.%I', p_rel);
    DELETE FROM antdb_shim.distributed_table WHERE relname = p_rel;
END
$$;

-- What AntDB would distribute but this shim cannot reproduce faithfully is refused, loudly.
CREATE FUNCTION antdb_shim.check_distributable(p_rel regclass) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = p_rel AND attname = 'xc_node_id') THEN
        RAISE EXCEPTION 'column name "xc_node_id" conflicts with a system column name'
            USING ERRCODE = 'duplicate_column';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = p_rel AND contype <> 'n') THEN
        RAISE EXCEPTION 'antdb shim: table % has PRIMARY KEY/UNIQUE/CHECK/FOREIGN KEY/EXCLUDE constraints, '
            'which the vanilla PostgreSQL shim cannot distribute', p_rel USING ERRCODE = 'feature_not_supported';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
                 AND (a.attidentity <> '' OR a.attgenerated <> ''
                      OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) ~ 'nextval\(')) THEN
        RAISE EXCEPTION 'antdb shim: table % has identity, generated or sequence-backed columns, '
            'which the vanilla PostgreSQL shim cannot distribute', p_rel USING ERRCODE = 'feature_not_supported';
    END IF;
END
$$;

-- Like AntDB's default: hash on the first column whose type can be hashed.
CREATE FUNCTION antdb_shim.distribution_key(p_rel regclass) RETURNS name
LANGUAGE plpgsql STABLE AS $$
DECLARE
    key name;
BEGIN
    SELECT a.attname INTO key
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
      AND EXISTS (SELECT 1 FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
                  WHERE am.amname = 'hash' AND oc.opcdefault
                    AND (oc.opcintype IN (a.atttypid, t.typbasetype)
                         OR (oc.opcintype = 'anyenum'::regtype AND t.typtype = 'e')
                         OR (oc.opcintype = 'anyarray'::regtype AND t.typcategory = 'A')
                         OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = a.atttypid
                                    AND c.casttarget = oc.opcintype AND c.castmethod = 'b')))
    ORDER BY a.attnum LIMIT 1;
    IF key IS NULL THEN
        RAISE EXCEPTION 'antdb shim: table % has no column usable as hash distribution key', p_rel
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN key;
END
$$;

-- Column definitions as SQL; datanodes get no defaults (coordinators always send every column).
CREATE FUNCTION antdb_shim.column_list(p_rel regclass, p_with_defaults boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s%s%s', a.attname,
               pg_catalog.format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                    THEN ' COLLATE ' || pg_catalog.format('%I.%I', cn.nspname, co.collname) ELSE '' END,
               CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
               CASE WHEN p_with_defaults AND d.adbin IS NOT NULL
                    THEN ' DEFAULT ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) ELSE '' END),
           ', ' ORDER BY a.attnum)
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The origin coordinator: shard tables on every datanode, own partitioned table, replay on
-- every other coordinator; remote transactions commit only once all of them succeeded.
CREATE FUNCTION antdb_shim.distribute(p_rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel name := (SELECT relname FROM pg_catalog.pg_class WHERE oid = p_rel);
    key name;
    cols_full text;
    cols_plain text;
    node record;
    conns text[] := '{}';
BEGIN
    PERFORM antdb_shim.check_distributable(p_rel);
    key := antdb_shim.distribution_key(p_rel);
    cols_full := antdb_shim.column_list(p_rel, true);
    cols_plain := antdb_shim.column_list(p_rel, false);
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'on', true);
    BEGIN
        FOR node IN SELECT * FROM antdb_shim.datanodes() LOOP
            conns := conns || antdb_shim.open_remote(node.node_name, node.node_host, node.node_port);
            PERFORM antdb_shim.dblink_exec(conns[pg_catalog.array_length(conns, 1)], pg_catalog.format(
                'CALL antdb_shim.create_shard_table(%L, %L, %s)', rel, cols_plain, node.node_id));
        END LOOP;
        EXECUTE pg_catalog.format('DROP TABLE public.%I', rel);
        CALL antdb_shim.build_distributed(rel, cols_full, key);
        FOR node IN SELECT * FROM antdb_shim.peer_coordinators() LOOP
            conns := conns || antdb_shim.open_remote(node.node_name, node.node_host, node.node_port);
            PERFORM antdb_shim.dblink_exec(conns[pg_catalog.array_length(conns, 1)], pg_catalog.format(
                'CALL antdb_shim.build_distributed(%L, %L, %L)', rel, cols_full, key));
        END LOOP;
        PERFORM antdb_shim.commit_remotes(conns);
    EXCEPTION WHEN OTHERS THEN
        PERFORM antdb_shim.abandon_remotes();
        RAISE;
    END;
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'off', true);
END
$$;

CREATE FUNCTION antdb_shim.undistribute(p_rel name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    node record;
    conns text[] := '{}';
BEGIN
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'on', true);
    DELETE FROM antdb_shim.distributed_table WHERE relname = p_rel;
    BEGIN
        FOR node IN SELECT * FROM antdb_shim.datanodes() LOOP
            conns := conns || antdb_shim.open_remote(node.node_name, node.node_host, node.node_port);
            PERFORM antdb_shim.dblink_exec(conns[pg_catalog.array_length(conns, 1)],
                                           pg_catalog.format('DROP TABLE IF EXISTS public.%I', p_rel));
        END LOOP;
        FOR node IN SELECT * FROM antdb_shim.peer_coordinators() LOOP
            conns := conns || antdb_shim.open_remote(node.node_name, node.node_host, node.node_port);
            PERFORM antdb_shim.dblink_exec(conns[pg_catalog.array_length(conns, 1)],
                                           pg_catalog.format('CALL antdb_shim.forget_distributed(%L)', p_rel));
        END LOOP;
        PERFORM antdb_shim.commit_remotes(conns);
    EXCEPTION WHEN OTHERS THEN
        PERFORM antdb_shim.abandon_remotes();
        RAISE;
    END;
    PERFORM pg_catalog.set_config('antdb_shim.internal', 'off', true);
END
$$;

CREATE FUNCTION antdb_shim.on_create_table() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    cmd record;
BEGIN
    IF NOT antdb_shim.is_coordinator() OR antdb_shim.in_shim() THEN
        RETURN;
    END IF;
    FOR cmd IN SELECT c.objid
               FROM pg_catalog.pg_event_trigger_ddl_commands() c
               JOIN pg_catalog.pg_class r ON r.oid = c.objid
               WHERE c.command_tag = 'CREATE TABLE' AND c.object_type = 'table' AND NOT c.in_extension
                 AND r.relnamespace = 'public'::regnamespace AND r.relkind = 'r'
                 AND r.relpersistence <> 't' AND NOT r.relispartition
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = r.oid) LOOP
        PERFORM antdb_shim.distribute(cmd.objid::regclass);
    END LOOP;
END
$$;

CREATE FUNCTION antdb_shim.on_drop_table() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    obj record;
BEGIN
    IF NOT antdb_shim.is_coordinator() OR antdb_shim.in_shim() THEN
        RETURN;
    END IF;
    FOR obj IN SELECT d.object_name FROM pg_catalog.pg_event_trigger_dropped_objects() d
               JOIN antdb_shim.distributed_table t ON t.relname = d.object_name
               WHERE d.object_type = 'table' AND d.schema_name = 'public' AND d.original LOOP
        PERFORM antdb_shim.undistribute(obj.object_name::name);
    END LOOP;
END
$$;

CREATE EVENT TRIGGER antdb_shim_create_table ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION antdb_shim.on_create_table();
CREATE EVENT TRIGGER antdb_shim_drop_table ON sql_drop WHEN TAG IN ('DROP TABLE')
    EXECUTE FUNCTION antdb_shim.on_drop_table();
