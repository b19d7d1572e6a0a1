# pg_dump and pg_restore keep every event, its signature and the store's
# state: the restored database verifies, and appends continue after the
# restored positions and versions. Changed partition and sync settings are
# restored over the defaults CREATE EXTENSION makes, without an error.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('dump_restore');
sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }

my $t = "'00000000-0000-0000-0000-0000000000e1'";
my $s = "'00000000-0000-0000-0000-0000000000f1'";
sql("SELECT count(*) FROM generate_series(1, 50) g, LATERAL ves.append($t, $s, 'Sku', 'sku-' || (g % 5), 'stock.set', jsonb_build_object('qty', g), idempotency_key => 'k' || g)");
sql("SELECT ves.create_subscription($t, 'sync')");
sql("SELECT ves.ack($t, 'sync', 0, 20)");
# A partition of an older month, created after CREATE EXTENSION.
sql("SELECT ves.ensure_partitions(now() - interval '2 months')");
my $before = sql("SELECT count(*) || '|' || max(position) || '|' || (SELECT count(*) FROM ves.event_partitions) FROM ves.events");

# Settings changed from their defaults: the partition layout and sync
# settings (singleton rows that CREATE EXTENSION makes again on restore).
sql("UPDATE ves.partition_config SET tenant_buckets = 8, months_ahead = 3");
sql(q{SELECT ves.set_sync_settings('{"window": 128, "order_hold": "3 days"}')});
my $audited = sql("SELECT count(*) FROM ves.audit_log");
my $settings = sql("SELECT settings FROM ves.sync_settings");

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $dump = "$tmp/ves.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_checks_all([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	0, [qr/^$/], [qr/^$/], 'pg_restore succeeds and prints no error');

is(sql('SELECT tenant_buckets || \'|\' || months_ahead FROM ves.partition_config', 'restored'), '8|3',
	'the changed partition settings are restored');
is(sql('SELECT count(*) FROM ves.partition_config', 'restored'), 1, 'in one row');
is(sql('SELECT settings FROM ves.sync_settings', 'restored'), $settings,
	'the sync settings are restored, changed and unchanged ones');
is(sql("SELECT count(*) FROM ves.audit_log", 'restored'), $audited,
	'the audit log is restored and the restore itself adds no entry');

# A plain SQL dump restored with psql behaves the same.
my $plain = "$tmp/ves.sql";
$node->command_ok([ 'pg_dump', '-f', $plain, '-d', $node->connstr('postgres') ], 'pg_dump as SQL succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored_sql');
$node->command_checks_all(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored_sql'), '-f', $plain ],
	0, [qr/^/], [qr/^$/], 'psql restores it without an error');
is(sql('SELECT tenant_buckets || \'|\' || months_ahead FROM ves.partition_config', 'restored_sql')
	  . ' ' . sql('SELECT settings FROM ves.sync_settings', 'restored_sql'),
	"8|3 $settings", 'with the partition and sync settings');

# Settings left at their defaults: the dump carries no partition_config row,
# and the restored database has the defaults.
$node->safe_psql('postgres', 'CREATE DATABASE defaults');
$node->safe_psql('defaults', 'CREATE EXTENSION pg_ves');
my $defaults_dump = "$tmp/defaults.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $defaults_dump, '-d', $node->connstr('defaults') ],
	'pg_dump of a database with default settings succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE defaults_restored');
$node->command_checks_all(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('defaults_restored'), $defaults_dump ],
	0, [qr/^$/], [qr/^$/], 'and pg_restore of it prints no error');
is(sql('SELECT tenant_buckets || \'|\' || months_ahead FROM ves.partition_config', 'defaults_restored'), '4|2',
	'default partition settings stay the defaults');
is(sql('SELECT settings FROM ves.sync_settings', 'defaults_restored'), sql('SELECT settings FROM ves.sync_settings', 'defaults'),
	'default sync settings stay the defaults');

is(sql("SELECT count(*) || '|' || max(position) || '|' || (SELECT count(*) FROM ves.event_partitions) FROM ves.events", 'restored'),
	$before, 'events, positions and partitions restored');
is(sql('SELECT count(*) FROM ves.verify_events()', 'restored'), 0, 'every restored event verifies');
is(sql("SELECT checkpoint FROM ves.subscription_members WHERE subscription = 'sync'", 'restored'), 20,
	'subscription checkpoints restored');
is(sql("SELECT duplicate FROM ves.append($t, $s, 'Sku', 'sku-1', 'stock.set', '{\"qty\": 1}', idempotency_key => 'k1')", 'restored'),
	't', 'idempotency keys restored');
my ($pos, $ver) = split /\|/, sql("SELECT position || '|' || entity_version FROM ves.append($t, $s, 'Sku', 'sku-1', 'stock.set', '{\"qty\": 99}', expected_version => 10)", 'restored');
ok($pos > 50, "appends continue after the restored positions ($pos)");
is($ver, 11, 'entity versions continue');
is(sql("SELECT count(*) FROM ves.read_all(50, 100)", 'restored'), 1, 'read_all sees the new event');
is(sql("SELECT ves.verify_event(event_id) FROM ves.events WHERE position = $pos", 'restored'), 't',
	'the new event is signed with the restored key');

$node->stop;
done_testing();
