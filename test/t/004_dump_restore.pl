# pg_dump and pg_restore keep every event, its signature and the store's
# state: the restored database verifies, and appends continue after the
# restored positions and versions.
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

my $dump = PostgreSQL::Test::Utils::tempdir() . '/ves.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore succeeds without errors');

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
