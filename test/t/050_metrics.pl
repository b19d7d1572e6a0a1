# Delivery metrics with the sync worker and the mock sink: known traffic
# (fast inventory deliveries, slow order deliveries, answers that fail and
# are retried) gives the counts and latency percentiles ves.sync_metrics
# reports, within the bounds the sink's delays set; the worker's per-minute
# rollup in ves.sync_history carries the same counts without counting them
# twice; and ves.prometheus_metrics() passes `promtool check metrics`.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('metrics');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'a sync worker runs');

my $t = '00000000-0000-0000-0000-000000005001';
my $s = '00000000-0000-0000-0000-000000005002';
sub dest
{
	my ($name, $options) = @_;
	sql("SELECT ves.create_destination('$name', 'http', '" . $sink->url("/$name") . "', '$options')");
}
dest('fast', '{"entity_types": ["inventory"]}');
dest('slow', '{"entity_types": ["order"]}');
dest('flaky', '{"entity_types": ["customer"], "backoff_base_ms": 10, "backoff_cap_ms": 20, "jitter": 0}');
# Every order request waits 300 ms at the sink; the flaky path answers 500
# three times before it accepts.
$sink->control(path => '/slow', mode => 'slow', delay_ms => 300);
$sink->control(path => '/flaky', mode => 'status', status => 500, times => 3);

sql("SELECT count(*) FROM generate_series(1, 20) g,
       LATERAL ves.append('$t', '$s', 'inventory', 'sku-' || g, 'stock.set', '{\"on_hand\": 1}')");
sql("SELECT count(*) FROM generate_series(1, 10) g,
       LATERAL ves.append('$t', '$s', 'order', 'o-' || g, 'order.created', '{}')");
sql("SELECT count(*) FROM ves.append('$t', '$s', 'customer', 'c-1', 'customer.created', '{}')");

ok( wait_until(60,
		sub { sql(q{SELECT sum(synced) FROM ves.get_sync_status()}) == 31 }),
	'the worker delivers all 31 rows');

my %m = map { my @f = split /\|/; ($f[0] => \@f) } split /\n/, sql(q{
	SELECT destination, attempts, successes, failures, retries, dead,
	       coalesce(inventory_sync_p50, -1), coalesce(inventory_sync_p99, -1),
	       coalesce(order_sync_p50, -1), coalesce(order_sync_p95, -1),
	       coalesce(http_p50, -1), sync_success_rate, batch_efficiency, queue_depth
	FROM ves.sync_metrics('5 min') WHERE destination IS NOT NULL});

is(join(',', @{ $m{fast} }[1 .. 5]), '20,20,0,0,0', 'fast: 20 attempts, 20 successes, no failure');
ok($m{fast}[6] > 0 && $m{fast}[6] < 5, "fast: inventory p50 $m{fast}[6] s is measured and under the seeds' 5 s");
ok($m{fast}[7] >= $m{fast}[6] && $m{fast}[7] < 5, "fast: inventory p99 $m{fast}[7] s is at least p50 and under 5 s");
is($m{fast}[8], -1, 'fast: no order latency (it carries inventory only)');
is($m{fast}[11], 1, 'fast: success rate 1');
is($m{fast}[12], 1, 'fast: one item per request');
is($m{fast}[13], 0, 'fast: nothing queued');

is(join(',', @{ $m{slow} }[1 .. 5]), '10,10,0,0,0', 'slow: 10 attempts, 10 successes');
ok($m{slow}[9] >= 0.2 && $m{slow}[9] <= 30,
	"slow: order p95 $m{slow}[9] s lies in the bucket of the sink's 300 ms delay or above, under the seeds' 30 s");
ok($m{slow}[8] >= 0.2, "slow: order p50 $m{slow}[8] s is not below the 300 ms bucket");
ok($m{slow}[10] >= 0.2 && $m{slow}[10] <= 0.5, "slow: HTTP p50 $m{slow}[10] s is in the 300 ms bucket (0.2, 0.5]");
is($m{slow}[6], -1, 'slow: no inventory latency');

is(join(',', @{ $m{flaky} }[1 .. 5]), '4,1,3,3,0', 'flaky: 4 attempts, 1 success, 3 failures, 3 retries');
is($m{flaky}[11], 0.25, 'flaky: success rate 1/4');

my $total = sql(q{SELECT attempts || ',' || successes || ',' || failures || ',' || round(sync_success_rate::numeric, 4)
                  FROM ves.sync_metrics() WHERE destination IS NULL});
is($total, '34,31,3,0.9118', 'the total row sums the destinations');

my $prom = sql(q{SELECT ves.prometheus_metrics()});
like($prom, qr/^pgves_delivery_failures_total\{destination="flaky",destination_kind="http",class="transient"\} 3$/m,
	'exposition: the flaky destination\'s three 500s are transient failures');
like($prom, qr/^pgves_sync_latency_seconds_count\{destination="slow",destination_kind="http",kind="order"\} 10$/m,
	'exposition: ten order latencies for slow');
like($prom, qr/^pgves_sync_latency_seconds_bucket\{destination="slow",destination_kind="http",kind="order",le="0.2"\} 0$/m,
	'exposition: none of them at or below 0.2 s');

SKIP:
{
	skip 'promtool (Debian package prometheus) is not installed', 2
	  unless system('promtool --version >/dev/null 2>&1') == 0;
	my $file = PostgreSQL::Test::Utils::tempdir() . '/pg_ves.prom';
	open my $fh, '>', $file or die "$file: $!";
	print $fh $prom, "\n";
	close $fh;
	my $out = `promtool check metrics < $file 2>&1`;
	is($?, 0, 'promtool check metrics accepts ves.prometheus_metrics()') or diag($out);
	is($out, '', 'with no lint warnings');
}

# The worker writes what each destination counted to ves.sync_history once
# a minute; sync_metrics then reads the rollup and the live counters since
# it, so nothing is counted twice.
ok( wait_until(150,
		sub { sql(q{SELECT coalesce(sum(successes), 0) FROM ves.sync_history WHERE destination = 'fast'}) == 20 }),
	'the worker rolled the 20 fast deliveries up into ves.sync_history');
# The flaky destination's retries may straddle a minute that the fast
# deliveries did not: its last rollup can come a minute after theirs.
my $flaky_rolled;
ok( wait_until(150,
		sub {
			$flaky_rolled = sql(q{SELECT sum(attempts) || ',' || sum(failures) || ',' || sum(retries) FROM ves.sync_history WHERE destination = 'flaky'});
			$flaky_rolled eq '4,3,3';
		}),
	'with the flaky destination\'s attempts, failures and retries')
  or diag("flaky rolled up as attempts,failures,retries = $flaky_rolled");
ok(sql(q{SELECT bool_and(order_sync_p95 >= 0.2) FROM ves.sync_history WHERE destination = 'slow' AND order_sync_p95 IS NOT NULL}) eq 't',
	'and per-minute order p95s of the slow destination');
is(sql(q{SELECT successes FROM ves.sync_metrics('1 hour') WHERE destination = 'fast'}), 20,
	'sync_metrics after the rollup: still 20 successes, not 40');
is(sql(q{SELECT count(*) FROM ves.sync_history WHERE minute > now()}), 0, 'rollups are dated in the past minute');

# Without counting: ves.metrics = off leaves the counters as they are.
$node->append_conf('postgresql.conf', "ves.metrics = off\n");
$node->reload;
sleep 1;
sql("SELECT count(*) FROM ves.append('$t', '$s', 'inventory', 'sku-off', 'stock.set', '{}')");
ok(wait_until(30, sub { sql(q{SELECT synced FROM ves.get_sync_status() WHERE destination = 'fast'}) >= 21 }),
	'with ves.metrics off the row is still delivered');
is(sql(q{SELECT successes FROM ves.sync_metrics('1 hour') WHERE destination = 'fast'}), 20,
	'and not counted');

my $log = slurp_file($node->logfile);
unlike($log, qr/cannot write ves\.sync_history|terminated by signal/, 'no rollup error and no crash in the log');

$node->stop;
done_testing();
