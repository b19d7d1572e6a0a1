# One destination that never answers must not take the worker's whole send
# window: it keeps its share (twice its concurrency at most) while its
# requests hang, and the other destinations go on draining. Here a TCP
# listener that never answers (timeout_ms 10 minutes) and a healthy sink get
# the same 1,000 events; the healthy one receives all of them while every
# request to the silent one is still waiting.
use strict;
use warnings;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('destination_share');
# The silent destination waits up to 10 minutes per request, the most
# ves.max_timeout_ms allows.
$node->append_conf('postgresql.conf', "ves.max_timeout_ms = '10min'\n");
$node->reload;
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
# The kernel completes the connections (up to the backlog) and takes the
# requests; nothing ever reads them or answers.
my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 128, Proto => 'tcp')
  or die "listen: $!";
my $silent_url = 'http://127.0.0.1:' . $silent->sockport . '/silent';
ok(enable_worker($node), 'the sync worker runs');
is(sql(q{SELECT ves.get_sync_settings()->>'window'}), 64, 'the send window is the default 64 rows');
sql(qq{SELECT ves.create_destination('silent', 'http', '$silent_url', '{"timeout_ms": 600000, "concurrency": 16}')});
sql("SELECT ves.create_destination('healthy', 'http', '" . $sink->url('/healthy') . q{', '{"concurrency": 16}')});

sql(q{
  SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
    'tenant_id', '00000000-0000-0000-0000-0000000000c1', 'store_id', '00000000-0000-0000-0000-0000000000d1',
    'entity_type', 'Sku', 'entity_id', 'sku-' || g, 'event_type', 'stock.set',
    'payload', jsonb_build_object('qty', g)) ORDER BY g)
    FROM generate_series(1, 1000) g))});
is(sql(q{SELECT count(*) FROM ves.outbox GROUP BY destination_id ORDER BY 1 LIMIT 1}), 1000,
	'1,000 outbox rows for each destination');

ok(wait_until(60, sub { sql(q{SELECT synced FROM ves.get_sync_status() WHERE destination = 'healthy'}) == 1000 }),
	'the healthy destination receives all of its 1,000 events');
is(scalar($sink->requests('/healthy')) >= 1000 ? 1 : 0, 1, 'the sink saw them');
my $s = sql(q{SELECT syncing || '|' || synced || '|' || failed || '|' || dead FROM ves.get_sync_status()
              WHERE destination = 'silent'});
my ($syncing, $synced, $failed, $dead) = split /\|/, $s;
is("$synced|$failed|$dead", '0|0|0', 'meanwhile nothing to the silent destination finished: no answer, no timeout');
cmp_ok($syncing, '>=', 16, "its requests are still hanging ($syncing rows under lease)");
cmp_ok($syncing, '<=', 32, 'it holds no more than twice its concurrency of the window');
is(sql(q{SELECT in_flight FROM ves.worker_status}) >= 16 ? 1 : 0, 1, 'the worker still has them in flight');

$node->stop;
close $silent;
done_testing();
