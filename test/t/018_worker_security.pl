# The sync worker's privileges. (1) A database owner who is not a superuser
# sets a hostile search_path on the database and puts shadowing functions and
# operators in it (and makes transactions read-only and serializable, and
# turns row security off): the worker delivers normally and none of them ever
# runs in it. (2) ves.worker_role: the worker connects as that role (LOGIN, holding
# ves_worker, not a superuser), delivers, and keeps the partitions made; a
# missing, NOLOGIN or superuser role is refused with one warning each and no
# worker starts meanwhile.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c8';
my $store = '00000000-0000-0000-0000-0000000000d8';

my $node = new_node('worker_security');
my $sink = start_sink();

# Statements of the test itself pin their own search_path: the database's
# hostile setting must only meet the worker.
sub sql
{
	my ($query, $db, %opts) = @_;
	return $node->safe_psql($db // 'postgres',
		"SET search_path = pg_catalog, public; SET default_transaction_read_only = off;"
		  . " SET default_transaction_isolation = 'read committed'; SET row_security = on;\n$query",
		%opts);
}
sub log_since { return substr(slurp_file($node->logfile), $_[0]); }

sub append { my ($db, $n, $prefix) = @_; return append_orders(sub { sql($_[0], $db) }, $tenant, $store, $n, $prefix); }

# --- (1) a hostile search_path set by the database owner ---------------------------------

sql('CREATE ROLE mallory LOGIN');
sql('CREATE DATABASE shop OWNER mallory');
sql('CREATE EXTENSION pg_ves', 'shop');
sql("SELECT ves.create_destination('hook', 'webhook', '" . $sink->url('/shop') . "', '{}')", 'shop');

# Every trap records who ran it, and in which kind of process, then does what
# the pg_catalog object would do (so a worker that used them would still
# seem to work).
$node->safe_psql('shop', q{
SET ROLE mallory;
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE TABLE evil.calls (who text, what text, backend text);
GRANT INSERT, SELECT ON evil.calls TO PUBLIC;
CREATE FUNCTION evil.note(what text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO evil.calls
  SELECT pg_catalog.current_user(), what, a.backend_type FROM pg_catalog.pg_stat_activity a
  WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
$$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.pg_backend_pid() RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('pg_backend_pid()'); RETURN pg_catalog.pg_backend_pid(); END $$;
CREATE FUNCTION evil.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION evil.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('unnest'); RETURN QUERY SELECT * FROM pg_catalog.unnest($1); END $$;
CREATE FUNCTION evil.make_interval(secs double precision) RETURNS interval LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('make_interval'); RETURN pg_catalog.make_interval(secs => secs); END $$;
CREATE FUNCTION evil.eq_text(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('text = text'); RETURN pg_catalog.texteq($1, $2); END $$;
CREATE FUNCTION evil.eq_int(int, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('int = int'); RETURN pg_catalog.int4eq($1, $2); END $$;
CREATE FUNCTION evil.eq_bigint(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('bigint = bigint'); RETURN pg_catalog.int8eq($1, $2); END $$;
CREATE FUNCTION evil.eq_uuid(uuid, uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('uuid = uuid'); RETURN pg_catalog.uuid_eq($1, $2); END $$;
CREATE FUNCTION evil.eq_text_uuid(text, uuid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('text = uuid'); RETURN pg_catalog.texteq($1, $2::text); END $$;
CREATE FUNCTION evil.arrow(jsonb, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.note('jsonb ->> text'); RETURN pg_catalog.jsonb_object_field_text($1, $2); END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq_text);
CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.eq_int);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.eq_bigint);
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.eq_uuid);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = uuid, FUNCTION = evil.eq_text_uuid);
CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.arrow);
ALTER DATABASE shop SET search_path = evil, pg_catalog, public;
-- Settings that would keep a worker from working if it took them.
ALTER DATABASE shop SET default_transaction_read_only = on;
ALTER DATABASE shop SET default_transaction_isolation = 'serializable';
ALTER DATABASE shop SET row_security = off;
});

# The traps work: a session that takes the database's search_path runs them.
$node->safe_psql('shop', "SET default_transaction_read_only = off;\nSELECT now(), 1 = 1",
	extra_params => [ '-U', 'mallory' ]);
cmp_ok(sql(q{SELECT count(*) FROM evil.calls WHERE backend = 'client backend'}, 'shop'), '>=', 2,
	'the traps are armed: a session with the database\'s search_path runs them');

ok(enable_worker($node, 'postgres, shop'), 'workers run for postgres and shop');
my @ids = append('shop', 10, 'evil');
ok(wait_until(30, sub { $sink->arrived('/shop', @ids) == 10 }), 'the worker in shop delivers all 10 events');
ok( wait_until(30, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status = 'synced'}, 'shop') == 10 }),
	'and records them synced');
# Let it run its housekeeping and a few rounds more.
sleep 3;
is(sql(q{SELECT count(*) FROM evil.calls WHERE backend LIKE 'pg_ves%'}, 'shop'), 0,
	'no shadowing function or operator ever ran in the worker')
  or diag(sql(q{SELECT string_agg(DISTINCT what, ', ') FROM evil.calls WHERE backend LIKE 'pg_ves%'}, 'shop'));

# --- (2) ves.worker_role -------------------------------------------------------------------

sql('CREATE ROLE pgves_worker LOGIN');
sql('GRANT ves_worker TO pgves_worker');
# A role setting outranks the database's: the worker ignores it as well.
sql('ALTER ROLE pgves_worker IN DATABASE shop SET search_path = evil, pg_catalog');
sql('CREATE ROLE boss LOGIN SUPERUSER');
sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')});
sql("SELECT ves.create_destination('hook', 'webhook', '" . $sink->url('/postgres') . "', '{}')");

sub set_role
{
	my ($role) = @_;
	sql("ALTER SYSTEM SET ves.worker_role = '$role'");
	sql('SELECT pg_reload_conf()');
}

sub worker_users
{
	return sql(q{SELECT string_agg(a.usename || ':' || r.rolsuper::text, ',' ORDER BY a.usename)
	             FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
	             WHERE a.backend_type LIKE 'pg_ves%' AND a.datname = 'postgres'});
}

# Refused roles: one warning each, and no worker meanwhile.
for my $case ([ 'nosuch', 'does not exist' ], [ 'ves_worker', 'does not have the LOGIN attribute' ],
	[ 'boss', 'is a superuser' ])
{
	my ($role, $why) = @$case;
	my $offset = -s $node->logfile;
	set_role($role);
	ok(wait_until(20, sub { !worker_pids($node) && !worker_pids($node, 'shop') }),
		"with ves.worker_role = '$role' the running workers stop");
	sleep 11;    # two launcher rounds and more
	is_deeply([ worker_pids($node) ], [], "and none starts as $role");
	my $log = log_since($offset);
	my $warnings = () = $log =~ /WARNING:  pg_ves launcher: ves.worker_role "\Q$role\E" \Q$why\E/g;
	is($warnings, 1, "one warning: ves.worker_role \"$role\" $why");
	unlike($log, qr/FATAL/, 'and no FATAL');
}

# A role that may not connect to one of the databases: that database waits,
# with one warning.
sql('REVOKE CONNECT ON DATABASE shop FROM PUBLIC');
my $offset = -s $node->logfile;
set_role('pgves_worker');
ok(wait_until(30, sub { worker_pids($node) }), 'with ves.worker_role = pgves_worker the worker of postgres starts');
sleep 11;
is_deeply([ worker_pids($node, 'shop') ], [], 'but none for shop, where pgves_worker may not connect');
my $no_connect = () = log_since($offset) =~ /WARNING:  pg_ves launcher: ves.worker_role "pgves_worker" may not connect to database "shop"/g;
is($no_connect, 1, 'one warning says so');
like(log_since($offset), qr/sync workers run as role "pgves_worker"/, 'the launcher logs the role it uses');
unlike(log_since($offset), qr/FATAL/, 'no FATAL');
sql('GRANT CONNECT ON DATABASE shop TO pgves_worker');

# A usable role.
$offset = -s $node->logfile;
my ($days_before) = sql(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'ves.idempotency_records'::regclass});
ok(wait_until(30, sub { worker_pids($node) && worker_pids($node, 'shop') }),
	'once granted CONNECT, both workers run as pgves_worker');
is(worker_users(), 'pgves_worker:false', 'pg_stat_activity shows the worker as pgves_worker, not a superuser');
my @mine = append('postgres', 10, 'role');
ok(wait_until(30, sub { $sink->arrived('/postgres', @mine) == 10 }), 'it delivers the events');
ok( wait_until(30, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status = 'synced'}) == 10 }),
	'and records them synced');
my @more = append('shop', 5, 'role');
ok(wait_until(30, sub { $sink->arrived('/shop', @more) == 5 }), 'so does the worker in shop, as the same role');
is(sql(q{SELECT count(*) FROM evil.calls WHERE backend LIKE 'pg_ves%'}, 'shop'), 0,
	'where no shadowing object runs either, despite the role\'s own search_path setting');

# Partitions: the furthest month of events and the furthest day of
# idempotency records go; the worker, as pgves_worker, makes them again.
my $month = sql(q{SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = 'ves.events'::regclass ORDER BY c.relname DESC LIMIT 1});
my $day = sql(q{SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'ves.idempotency_records'::regclass ORDER BY c.relname DESC LIMIT 1});
ok($month && $day, "the furthest partitions are $month and $day");
sql("DROP TABLE ves.$month");
sql("DROP TABLE ves.$day");
ok(wait_until(30, sub { sql("SELECT to_regclass('ves.$month') IS NOT NULL AND to_regclass('ves.$day') IS NOT NULL") eq 't' }),
	'the worker makes the dropped month and day partitions again');
is(sql("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ves.$month'::regclass"),
	sql(q{SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'pg_ves'}),
	'owned by the extension owner (made through the SECURITY DEFINER function)');
# A platform destination, as pgves_worker: it obtains and stores an access
# token (Login with Amazon), pushes the mapped SKU's count, records the
# listing with its rows, and counts the cross-platform sample once (the
# trigger on ves.listings leaves the worker's statement to it).
my $amazon = start_platform('amazon');
my $aurl = 'http://127.0.0.1:' . $amazon->port;
sql(qq{SELECT ves.create_destination('amazon', 'amazon_sp', '$aurl',
  '{"tenant_id": "$tenant", "store_id": "$store", "seller_id": "A1PGVESTEST",
    "marketplace_ids": ["ATVPDKIKX0DER"], "client_id": "amzn1.application-oa2-client.pgvestest",
    "client_secret": "amzn-client-secret", "refresh_token": "Atzr|pgves-refresh-token",
    "lwa_url": "$aurl/auth/o2/token", "product_type": "PRODUCT"}')});
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-R', 7)});
sql(q{SELECT ves.map_listing('amazon', 'SKU-R', '{"sku": "SKU-R"}')});
ok( wait_until(30, sub { ($amazon->call('GET', '/_quantities')->{quantities}{'SKU-R'} // -1) == 7 }),
	'as pgves_worker it pushes a mapped SKU\'s count to Amazon');
ok( wait_until(30, sub { sql(q{SELECT state || ' ' || known_quantity FROM ves.listings WHERE sku = 'SKU-R'}) eq 'synced 7' }),
	'and records the listing synced with the count Amazon has');
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-R', 4)});
ok( wait_until(30, sub { sql(q{SELECT known_quantity FROM ves.listings WHERE sku = 'SKU-R'}) == 4
	  && sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
	           WHERE d.name = 'amazon' AND o.status <> 'synced'}) == 0 }),
	'a change is pushed and recorded in the same way');
like( sql(q~SELECT string_agg(line, ',') FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') line
            WHERE line LIKE 'pgves_cross_platform_sync_seconds_count{destination="amazon"%'~),
	qr/^pgves_cross_platform_sync_seconds_count\{destination="amazon"[^}]*\} 2$/,
	'one cross-platform sample per push that brought Amazon in step, none twice');
sql(q{SELECT ves.drop_destination('amazon')});
$amazon->stop;

my $log = log_since($offset);
unlike($log, qr/permission denied|FATAL/, 'no permission error and no FATAL while it runs as pgves_worker');

# ves_worker holds what the worker needs, and not more.
for my $case ([ 'SELECT secret_box FROM ves.destination_secrets', 'read the credentials directly' ],
	[ 'DELETE FROM ves.outbox', 'delete outbox rows' ],
	[ q{UPDATE ves.outbox SET destination_id = destination_id}, 'move outbox rows to another destination' ],
	[ q{UPDATE ves.destinations SET url = 'http://127.0.0.1:1/'}, 'change a destination\'s URL' ],
	[ "SELECT ves.append('$tenant', '$store', 'Order', 'x', 'order.created', '{}')", 'append events' ])
{
	my ($query, $what) = @$case;
	my ($rc, $out, $err) = $node->psql('postgres', $query, extra_params => [ '-U', 'pgves_worker' ]);
	like($err, qr/permission denied/, "pgves_worker may not $what");
}

# Back to the default: the bootstrap superuser.
set_role('');
ok(wait_until(30, sub { (worker_users() // '') =~ /:true$/ }), "with ves.worker_role = '' the worker runs as the bootstrap superuser again");

$node->stop;
my @crashes = grep { /terminated by signal/ } split /\n/, slurp_file($node->logfile);
is_deeply(\@crashes, [], 'no process terminated by a signal');

# --- (3) a start without relcache init files --------------------------------------------
# After initdb and after a crash restart no normal backend has connected yet,
# so the shared catalogs' index entries are not in the relcache; the
# launcher, connected to no database, must still check the database and the
# role and start the worker at its first round, without a FATAL.

my $fresh = PostgreSQL::Test::Cluster->new('worker_fresh_start');
$fresh->init;
$fresh->append_conf('postgresql.conf', slurp_file($ENV{PGVES_TEST_CONF}));
$fresh->append_conf('postgresql.conf', "ves.databases = 'postgres'\nrestart_after_crash = on\n");
$fresh->start;
ok(wait_until(30, sub { worker_pids($fresh) }), 'a fresh cluster with ves.databases set starts its worker');
my @fatal = grep { /FATAL/ } split /\n/, slurp_file($fresh->logfile);
is_deeply(\@fatal, [], 'and its log has no FATAL (the launcher read the shared catalogs at once)');

# The same with ves.worker_role, after a crash restart: the launcher reads
# the role, its memberships and the database's ACL before any backend has
# rebuilt the init files.
$fresh->safe_psql('postgres', q{CREATE EXTENSION pg_ves;
  CREATE ROLE fresh_worker LOGIN; CREATE ROLE fresh_group NOLOGIN;
  GRANT ves_worker TO fresh_worker; GRANT fresh_group TO fresh_worker;
  REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
  GRANT CONNECT ON DATABASE postgres TO fresh_group;
  ALTER SYSTEM SET ves.worker_role = 'fresh_worker'; SELECT pg_reload_conf();});
ok( wait_until(30, sub { $fresh->safe_psql('postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_ves worker' AND usename = 'fresh_worker'}) == 1 }),
	'the worker runs as fresh_worker, which may connect through fresh_group');
my $fresh_offset = -s $fresh->logfile;
my ($victim) = worker_pids($fresh);
ok(kill('KILL', $victim), "SIGKILL to the worker (pid $victim): a crash restart");
ok( wait_until(60, sub { slurp_file($fresh->logfile) =~ /\Q(PID $victim)\E was terminated by signal 9/
	  && substr(slurp_file($fresh->logfile), $fresh_offset) =~ /reinitializing.*database system is ready to accept connections/s }),
	'the server restarts after the crash');
ok( wait_until(30, sub { $fresh->safe_psql('postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_ves worker' AND usename = 'fresh_worker'}) == 1 }),
	'and the worker starts again as fresh_worker');
# From the postmaster's reinitialization on: the launcher's first round may
# come before the "ready to accept connections" line.
my ($after_restart) = substr(slurp_file($fresh->logfile), $fresh_offset) =~ /all server processes terminated; reinitializing(.*)\z/s;
@fatal = grep { /FATAL/ } split /\n/, $after_restart // '';
is_deeply(\@fatal, [], 'no FATAL after the restart');
unlike($after_restart // '', qr/may not connect|WARNING:  pg_ves launcher/, 'and no launcher warning: the role may connect');

# A role that is a member of fresh_group but does not inherit its privileges
# may not connect (PostgreSQL refuses it too): the launcher says so and starts
# no worker for it.
$fresh->safe_psql('postgres', q{CREATE ROLE fresh_noinherit LOGIN NOINHERIT;
  GRANT ves_worker, fresh_group TO fresh_noinherit;
  ALTER SYSTEM SET ves.worker_role = 'fresh_noinherit'; SELECT pg_reload_conf();});
my ($rc, $out, $err) = $fresh->psql('postgres', 'SELECT 1', extra_params => [ '-U', 'fresh_noinherit' ]);
like($err, qr/permission denied for database/, 'PostgreSQL refuses fresh_noinherit a connection');
ok( wait_until(30, sub { substr(slurp_file($fresh->logfile), $fresh_offset)
	  =~ /WARNING:  pg_ves launcher: ves.worker_role "fresh_noinherit" may not connect to database "postgres"/ }),
	'and the launcher warns that it may not connect');
is_deeply([ worker_pids($fresh) ], [], 'and starts no worker as fresh_noinherit');
$fresh->stop;

done_testing();
