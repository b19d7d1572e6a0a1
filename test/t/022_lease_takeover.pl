# Recovery after kill -9 is bounded by retries, not by lease_seconds: rows
# leased by a worker that is gone (killed, or from before a server restart)
# are taken over by the next worker at once. With the default lease of 60 s
# and a sink failing 5 % of requests, a 3,000-event drain interrupted by
# kill -9 of the worker, and later of the postmaster, ends with every row
# synced before the dead holders' leases would have expired; nothing is
# lost and per-entity order holds at the sink.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('lease_takeover');
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'the sync worker runs');
is(sql(q{SELECT ves.get_sync_settings()->>'lease_seconds'}), 60, 'leases last the default 60 s');
sql("SELECT ves.create_destination('takeover', 'webhook', '" . $sink->url('/takeover')
	  . q{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "backoff_base_ms": 100, "backoff_cap_ms": 1000}')});
# Slow answers keep rows under lease long enough to crash mid-way, and one
# request in 20 fails.
$sink->control(mode => 'slow', delay_ms => 40, path => '/');
$sink->control(mode => 'status', status => 500, every => 20, path => '/takeover');

# Held back while queued, so the drain starts with all 3,000.
sql(q{SELECT ves.pause_destination('takeover')});
for my $b (0 .. 5)
{
	sql(qq{
	  SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
	    'tenant_id', '00000000-0000-0000-0000-0000000000c1', 'store_id', '00000000-0000-0000-0000-0000000000d1',
	    'entity_type', 'Sku', 'entity_id', 'sku-' || (g % 300), 'event_type', 'stock.set',
	    'payload', jsonb_build_object('qty', g, 'batch', $b)) ORDER BY g)
	    FROM generate_series($b * 500, $b * 500 + 499) g))});
}
is(sql('SELECT count(*) FROM ves.outbox'), 3000, '3,000 outbox rows');
sql(q{SELECT ves.resume_destination('takeover')});

sub open_rows { return sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}); }

# --- kill -9 of the worker -------------------------------------------------------

ok($sink->wait_for(400, '/takeover', 60), 'the worker is draining');
my ($victim) = worker_pids($node);
my ($holder, $leased) = split /\|/, sql(q{SELECT leased_by, count(*) FROM ves.outbox WHERE lease_until > now() GROUP BY 1});
my $killed_at = sql('SELECT now()');
my $log_offset = -s $node->logfile;
ok(kill('KILL', $victim), "SIGKILL to the worker (pid $victim, $leased rows under lease)");
cmp_ok($leased, '>', 0, "the killed worker held leases (lease identity $holder)");
isnt($holder, $victim, 'a lease names its holder by lease identity, not by pid');
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server accepts connections after crash recovery');
ok(wait_until(60, sub { my ($p) = worker_pids($node); $p && $p != $victim }), 'the launcher starts a new worker');
# The rows the dead worker held are sent again without waiting out its
# leases.
ok(wait_until(30, sub { sql("SELECT count(*) FROM ves.outbox WHERE leased_by = $holder") == 0 }),
	'the new worker takes over every row the dead one held');
is(sql(qq{SELECT now() < '$killed_at'::timestamptz + interval '60 s'}), 't',
	'... before their leases would have expired');
note('rows of the killed worker all taken over ' . sql(qq{SELECT round(extract(epoch FROM now() - '$killed_at'::timestamptz), 1)}) . ' s after its kill');

# --- kill -9 of the postmaster -----------------------------------------------------

my $open = open_rows();
cmp_ok($open, '>', 300, "the postmaster is killed mid-drain ($open rows not yet synced)");
($holder, $leased) = split /\|/, sql(q{SELECT leased_by, count(*) FROM ves.outbox WHERE lease_until > now() GROUP BY 1});
my $pm_killed_at = sql('SELECT now()');
my @children = keys %{ children_of(postmaster_pid($node)) };
$node->kill9;
ok(wait_until(60, sub { !grep { kill 0, $_ } @children }),
	'the postmaster\'s ' . scalar(@children) . " children exit after it was killed ($leased rows under lease)");
$node->start;
ok(wait_until(60, sub { worker_pids($node) }), 'the server starts again, with a worker');
ok(wait_until(30, sub { sql("SELECT count(*) FROM ves.outbox WHERE leased_by = $holder") == 0 }),
	'the new worker takes over every row leased before the restart');

# --- everything arrives, within the lease time -----------------------------------

ok(wait_until(120, sub { open_rows() == 0 }), 'every outbox row ends synced');
note("$open rows synced " . sql(qq{SELECT round(extract(epoch FROM now() - '$pm_killed_at'::timestamptz), 1)}) . ' s after the postmaster\'s kill');
is(sql(qq{SELECT now() < '$pm_killed_at'::timestamptz + interval '60 s'}), 't',
	'... before the leases held at the postmaster\'s kill would have expired');
is(sql(q{SELECT syncing || '|' || pending || '|' || failed || '|' || dead || '|' || synced FROM ves.get_sync_status()}),
	'0|0|0|0|3000', 'get_sync_status: 3,000 synced, none syncing, pending, failed or dead');
is(sql(q{SELECT count(*) FROM ves.outbox WHERE lease_until IS NOT NULL}), 0, 'no row left under a lease');
cmp_ok(scalar(grep { $_->{status} == 500 } $sink->requests('/takeover')), '>=', 100,
	'the sink failed about one request in 20');

my %first;    # webhook-id -> the first successful request carrying it
for my $r (grep { $_->{status} == 200 } $sink->requests('/takeover'))
{
	$first{ $r->{headers}{'webhook-id'} } //= $r;
}
my @events = split /\n/, sql('SELECT event_id FROM ves.events ORDER BY event_id');
is_deeply([ sort keys %first ], \@events, 'every event was accepted at least once, and nothing else was');

# Per entity, the first accepted delivery of each version comes after that
# of the previous one.
is_deeply([ entity_order_violations($node, values %first) ], [], 'per entity, events were accepted in entity_version order');

$node->stop;
done_testing();
