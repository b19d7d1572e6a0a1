# Only a primary delivers. A streaming standby configured with the same
# ves.databases runs no sync worker (it cannot write the outbox, and two
# senders would double every delivery); the primary delivers what is
# appended on it. Once the primary is gone and the standby promoted, the
# new primary's worker starts and delivers what is appended there, without
# resending what the old primary already delivered.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c1';
my $store = '00000000-0000-0000-0000-0000000000d1';

my $primary = new_node('primary', allows_streaming => 1);
my $sink = start_sink();
ok(enable_worker($primary), 'the primary runs a sync worker');
$primary->safe_psql('postgres', q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')});
$primary->safe_psql('postgres',
	"SELECT ves.create_destination('hook', 'webhook', '" . $sink->url('/hook') . "', '{}')");

# The server key that seals agent private keys is a file in the data
# directory, created on first use and not WAL-logged: it must exist before
# the base backup, or the promoted standby cannot sign (VE023).
$primary->safe_psql('postgres', "SELECT ves.create_agent_key('$tenant', '$store')");
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
# The backup carries the primary's postgresql.conf, ves.databases included.
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
# pg_basebackup keeps the key file's mode 0600; the harness's plain copy of
# the backup does not, and pg_ves rightly refuses a key others can read.
chmod 0600, $standby->data_dir . '/pg_ves_server.key';
$standby->start;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', 'SHOW ves.databases'), 'postgres', 'the standby has the same ves.databases');

sub append_on
{
	my ($node, $prefix, $n) = @_;
	return split /\n/, $node->safe_psql('postgres',
		"SELECT event_id FROM generate_series(1, $n) g,
		   LATERAL ves.append('$tenant', '$store', 'Order', '$prefix-' || g, 'order.created', '{}')");
}

sub ids_at_sink { return map { $_->{headers}{'webhook-id'} } $sink->requests('/hook'); }

my @first = append_on($primary, 'p', 20);
ok($sink->wait_for(20, '/hook', 30), 'the primary delivers the 20 events appended on it');
ok( wait_until(30, sub {
			$primary->safe_psql('postgres', q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'and records them synced');

is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_ves%'}),
	0, 'the standby runs no pg_ves process');
# The worker commits asynchronously; its last results reach the standby
# once the WAL writer has flushed them.
ok( wait_until(30, sub {
			$standby->safe_psql('postgres', q{SELECT count(*) FROM ves.outbox WHERE status = 'synced'}) == 20 }),
	'the standby sees the outbox rows the primary synced');
sleep 2;
is_deeply([ sort(ids_at_sink()) ], [ sort @first ], 'each event was delivered once, by the primary only');

# --- failover --------------------------------------------------------------------

$primary->stop;
$standby->promote;
ok( wait_until(60, sub { $standby->safe_psql('postgres', 'SELECT NOT pg_is_in_recovery()') eq 't' }),
	'the standby is promoted');
ok(wait_until(60, sub { worker_pids($standby) }), 'the promoted server starts a sync worker');

my @second = append_on($standby, 's', 20);
ok($sink->wait_for(40, '/hook', 30), 'the promoted server delivers the 20 events appended on it');
ok( wait_until(30, sub {
			$standby->safe_psql('postgres', q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'and records them synced');
sleep 1;
is_deeply([ sort(ids_at_sink()) ], [ sort(@first, @second) ],
	'every event was delivered once: nothing the old primary delivered was sent again');

$standby->stop;
for my $node ($primary, $standby)
{
	my @crashes = grep { /terminated by signal/ } split /\n/, slurp_file($node->logfile);
	is_deeply(\@crashes, [], $node->name . ': no process terminated by a signal');
}

done_testing();
