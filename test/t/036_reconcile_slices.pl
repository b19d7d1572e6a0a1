# The sync worker reconciles a slice of listings at a time between its
# delivery rounds (ves._reconcile_step), against the mock Amazon SP-API
# answering every read late (a "delay" fault), so that a run over 600
# listings takes seconds:
#  * a delivery to another destination, made while the run reads, goes out
#    before the run has read every listing, not after its end;
#  * the run's figures cover every listing across its slices (600 checked,
#    600 equal, score 1) and no slice's state is left behind;
#  * a worker killed with kill -9 mid-run leaves the run's place in
#    ves.reconcile_progress: the restarted worker reads on from there and
#    asks the platform again about no listing the run had already checked;
#  * against a rate-limited platform, the reads keep to the destination's
#    rate_limit and burst, within a slice and across slices: none is
#    throttled and the run reads every listing;
#  * a run at a slow platform's limits (5 reads a second) does not hold up
#    deliveries to another destination: slices wait for no token, and one
#    that finds the bucket empty writes nothing;
#  * nor does a platform that answers slowly: a slice's reads are in flight
#    beside the deliveries, which never wait for the platform's answers;
#  * nor a slow token endpoint: the platform's rows wait for the new token,
#    the other deliveries go on.
use strict;
use warnings;

use JSON::PP;
use Time::HiRes ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('reconcile_slices');
# Test clusters are created with restart_after_crash off; a killed worker
# here is the crash the server recovers from, as in production.
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $tenant = '36363636-3636-4363-8363-363636363636';
my $store = '36363636-3636-4363-9363-363636363636';
my $other = '36363636-3636-4363-a363-363636363637';
my $n = 600;

my $amazon = start_platform('amazon');
my $sink = start_sink();
my $url = $amazon->url('');
sql(qq{SELECT ves.create_destination('amz', 'amazon_sp', '$url', '{"tenant_id": "$tenant",
  "store_id": "$store", "seller_id": "A1PGVESTEST", "marketplace_ids": ["ATVPDKIKX0DER"],
  "client_id": "amzn1.application-oa2-client.pgvestest", "client_secret": "amzn-client-secret",
  "refresh_token": "Atzr|pgves-refresh-token", "lwa_url": "$url/auth/o2/token",
  "product_type": "PRODUCT", "rate_limit": 0, "timeout_ms": 30000}')});
sql(q{SELECT ves.create_destination('hook', 'webhook', '} . $sink->url('/hook')
	  . qq{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tenant_id": "$other"}')});

# 600 SKUs in stock, each mapped (the mapping pushes its count).
my $sku = q{'SKU-' || lpad(g::text, 4, '0')};
sql(qq{SELECT count(*) FROM generate_series(1, $n) g, LATERAL ves.set_stock('$tenant', '$store', $sku, g)});
sql(qq{SELECT count(*) FROM generate_series(1, $n) g,
  LATERAL ves.map_listing('amz', $sku, jsonb_build_object('sku', $sku))});
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.platform_listings WHERE state = 'synced'}) == $n }),
	"the $n listings' counts are pushed");

# Reads of the listings (GET), from the mock's log: [seq, sku, time
# answered] each.
my $log_seq = 0;
my @reads;
sub reads
{
	my $got = $amazon->call('GET', "/_log?after=$log_seq");
	for my $r (@{ $got->{requests} })
	{
		$log_seq = $r->{seq};
		push @reads, [ $r->{seq}, $1, $r->{time} ]
		  if $r->{method} eq 'GET' && $r->{path} =~ m{^/listings/[^/]+/[^/]+/[^/]+/([^/?]+)};
	}
	return scalar @reads;
}
reads();
my $pushes_only = scalar @reads;
is($pushes_only, 0, 'no listing was read yet');

# Every read answered 5 ms late, one at a time: a run takes about 3 s, a
# slice of 200 listings about 1 s.
$amazon->call('POST', '/_faults', { kind => 'delay', delay_ms => 5, times => undef, path => '/listings/' });

# --- deliveries go on while a run reads -------------------------------------------
my $before = sql(q{SELECT coalesce(max(finished_at)::text, '-infinity') FROM ves.reconcile_runs});
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
ok(wait_until(30, sub { reads() > 0 }), 'the worker starts a full run');
# A run begun goes on to its end whatever the interval: no further run
# starts behind it to blur what it read.
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});
my ($event) = append_orders(\&sql, $other, $store, 1, 'during-run');
ok($sink->wait_for(1, '/hook', 30), 'a delivery made during the run arrives');
ok(wait_until(60, sub { sql(qq{SELECT count(*) FROM ves.reconcile_runs WHERE finished_at > '$before'}) == 1 }),
	'the run ends');
# By the mocks' clocks (one machine): the run was still reading when the
# delivery arrived. Had the run held up the deliveries, every read would
# come first.
reads();
my ($arrival) = map { $_->{time} } $sink->requests('/hook');
my $later = grep { $_->[2] > $arrival } @reads;
cmp_ok($later, '>', 0, "the delivery arrives before the run has read every listing ($later of $n read after it)");
is(sql(q{SELECT checked || ' ' || equal || ' ' || mismatched || ' ' || unread || ' ' || consistency_score
         || ' ' || coalesce(error, 'no error') FROM ves.reconcile_status WHERE destination = 'amz'}),
	"$n $n 0 0 1 no error", 'its figures cover every listing across its slices');
is(sql(q{SELECT count(*) FROM ves.reconcile_progress}), 0, 'nothing of the run is left in progress');
my %first_run = map { $_->[1] => 1 } @reads;
is(scalar(keys %first_run), $n, 'the run read each listing once') or diag(scalar(@reads) . ' reads');
is(sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}), 0, 'every delivery is synced');

# --- kill -9 mid-run: the restarted worker goes on ---------------------------------
@reads = ();
reads();
$before = sql(q{SELECT max(finished_at) FROM ves.reconcile_runs});
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.reconcile_progress WHERE after_sku IS NOT NULL}) == 1 }),
	'a second run has read a slice');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});
my ($victim) = worker_pids($node);
my $cursor = sql(q{SELECT after_sku FROM ves.reconcile_progress});
my $log_offset = -s $node->logfile;
ok(kill('KILL', $victim), "SIGKILL to the worker (pid $victim) after $cursor");
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
reads();
my $seq_at_kill = $log_seq;
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server accepts connections after crash recovery');
ok(wait_until(60, sub { my ($p) = worker_pids($node); $p && $p != $victim }), 'a new worker starts');
ok(wait_until(60, sub { sql(qq{SELECT count(*) FROM ves.reconcile_runs WHERE finished_at > '$before'}) == 1 }),
	'the run ends under the new worker');
reads();
my $cursor_now = sql(q{SELECT after_sku FROM ves.reconcile_progress});
my @again = grep { $_->[0] > $seq_at_kill && $_->[1] le $cursor } @reads;
is(scalar(@again), 0, "no listing up to $cursor is read again after the kill")
  or diag(join ' ', map { $_->[1] } @again[ 0 .. ($#again < 9 ? $#again : 9) ]);
is(sql(q{SELECT checked || ' ' || equal || ' ' || unread FROM ves.reconcile_status WHERE destination = 'amz'}),
	"$n $n 0", 'the resumed run counts every listing once');
is($cursor_now, '', 'and ends with nothing left in progress');

# --- a rate-limited platform: reads keep to the destination's limits -----------------
# The mock refuses what goes faster than 60 reads a second (bursts of 100);
# the destination allows 50 a second (bursts of 100). Read all at once, a
# slice of 200 would be half refused. A burst this large against the rate
# also tests that the slices share one bucket: the first slice spends the
# burst, and a slice that started with a full burst again after the pause
# between slices (about a second, 60 reads' worth at the mock) would be
# refused in part.
$amazon->call('POST', '/_faults', { clear => JSON::PP::true });
$amazon->call('POST', '/_config', { rate_limit => { rate => 60, burst => 100 } });
sql(q{SELECT ves.alter_destination('amz', '{"rate_limit": 50, "burst": 100}')});
my $throttled = $amazon->call('GET', '/_stats')->{throttled};
@reads = ();
reads();
$before = sql(q{SELECT max(finished_at) FROM ves.reconcile_runs});
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
ok(wait_until(30, sub { reads() > 0 }), 'a third run starts');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});
ok(wait_until(90, sub { sql(qq{SELECT count(*) FROM ves.reconcile_runs WHERE finished_at > '$before'}) == 1 }),
	'it ends');
reads();
is(sql(q{SELECT checked || ' ' || equal || ' ' || unread || ' ' || coalesce(error, 'no error')
         FROM ves.reconcile_status WHERE destination = 'amz'}),
	"$n $n 0 no error", 'every listing is read, none refused');
is($amazon->call('GET', '/_stats')->{throttled} - $throttled, 0, 'the platform throttled no read');
my ($first, $final) = (@reads ? $reads[0][2] : 0, @reads ? $reads[-1][2] : 0);
cmp_ok($final - $first, '>=', ($n - 100) / 50 * 0.9,
	sprintf('the reads kept to 50 a second (%d reads over %.1f s)', scalar(@reads), $final - $first));

# --- a slow platform's run does not hold up the deliveries -------------------------
# At Amazon's own limits (5 reads a second, bursts of 5) a run over 600
# listings takes two minutes. The worker's slices read what the bucket
# allows at once and wait for no token; deliveries to another destination
# go out meanwhile as fast as without a run. Had a slice waited for the
# bucket through its one-second budget, the worker would deliver nothing for
# about half of the run, and a delivery would wait up to a second.
$amazon->call('POST', '/_config', { rate_limit => { rate => 6, burst => 6 } });
sql(q{SELECT ves.alter_destination('amz', '{"rate_limit": 5, "burst": 5}')});
$throttled = $amazon->call('GET', '/_stats')->{throttled};
@reads = ();
reads();
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
ok(wait_until(30, sub { reads() > 0 }), 'a fourth run starts, at 5 reads a second');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});
# An event every 0.1 s for 4 s.
check_delivery_waits([ delivery_waits(\&sql, $sink, $other, $store, 40, 'slow-run') ], 40, 4, undef, 'the run');
reads();
my $run_reads = scalar @reads;
cmp_ok($run_reads, '>=', 5, "the run reads meanwhile ($run_reads reads)");
is($amazon->call('GET', '/_stats')->{throttled} - $throttled, 0, 'and the platform throttled none of them');

# At one read a second, four slices in five find the bucket empty: they
# write nothing, and the run's progress row is rewritten only when the run
# moves on.
sql(q{SELECT ves.alter_destination('amz', '{"rate_limit": 1, "burst": 1}')});
my ($rewrites, $moves, $last) = (0, 0, '');
for (1 .. 60)
{
	my ($xmin, $place) = split /\|/, sql(q{SELECT xmin || '|' || coalesce(after_sku, '') FROM ves.reconcile_progress});
	if ($last ne '')
	{
		my ($last_xmin, $last_place) = split /\|/, $last;
		$rewrites++ if $xmin ne $last_xmin;
		$moves++ if $place ne $last_place;
	}
	$last = "$xmin|$place";
	Time::HiRes::sleep(0.05);
}
cmp_ok($moves, '>', 0, "the run moves on ($moves moves seen)");
cmp_ok($rewrites, '<=', $moves, "its progress is written only when it moves ($rewrites writes seen)");

# --- slow answers do not hold up the deliveries ------------------------------------
# Every read now answers 0.7 s late, two at a time, with no rate limit. A
# slice's reads go out on the worker's own HTTP engine beside its
# deliveries: the worker delivers while they are in flight and records the
# slice once they have answered. Had a slice waited for its answers, each
# would hold every delivery up for its whole one-second budget and the
# answers still due at its end (about 1.4 s a slice here).
$amazon->call('POST', '/_faults', { kind => 'delay', delay_ms => 700, times => undef, path => '/listings/' });
sql(q{SELECT ves.alter_destination('amz', '{"rate_limit": 0, "concurrency": 2}')});
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
@reads = ();
reads();
ok(wait_until(30, sub { reads() >= 2 }), 'a run reads from the slow platform');
my ($reader) = worker_pids($node);
ok(wait_until(10, sub { sql(qq{SELECT count(*) FROM ves.progress WHERE pid = $reader AND command = 'reconcile'
                               AND total > 0}) == 1 }),
	'ves.progress shows the slice under way across the worker\'s transactions');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});
my $reads_before = scalar @reads;
check_delivery_waits([ delivery_waits(\&sql, $sink, $other, $store, 30, 'slow-answers') ],
	30, 2, 0.7, 'the platform\'s answers');
reads();
cmp_ok(scalar(@reads) - $reads_before, '>=', 4,
	sprintf('the run read on meanwhile (%d reads)', scalar(@reads) - $reads_before));
my $place = sql(q{SELECT coalesce(after_sku, '') FROM ves.reconcile_progress});
ok(wait_until(30, sub { sql(q{SELECT coalesce(max(after_sku), '') FROM ves.reconcile_progress}) gt $place }),
	'and records its slices');
$amazon->call('POST', '/_faults', { clear => JSON::PP::true });
# The run reads on as fast as it goes.
$amazon->call('POST', '/_config', { rate_limit => undef });

# --- a slow token endpoint holds up no delivery --------------------------------------
# Amazon refuses the access token of the next push; Login with Amazon then
# takes 1.5 s to grant a new one. The worker asks for it on its own HTTP
# engine: the Amazon destination's rows wait for the token, every other
# destination's deliveries go on.
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.reconcile_progress}) == 0 }), 'the run has ended');
my $grants = $amazon->call('GET', '/_stats')->{token_grants};
$amazon->call('POST', '/_faults', { kind => 'delay', delay_ms => 1500, times => undef, path => '/auth/o2/token' });
$amazon->call('POST', '/_faults', { kind => 'token_expiry', times => 1 });
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-0001', 4321)});
check_delivery_waits([ delivery_waits(\&sql, $sink, $other, $store, 30, 'slow-token') ],
	30, 2, 1.5, 'the token endpoint');
ok(wait_until(30, sub { sql(q{SELECT known_quantity FROM ves.listings WHERE sku = 'SKU-0001'}) == 4321 }),
	'the push goes out with the new token');
cmp_ok($amazon->call('GET', '/_stats')->{token_grants} - $grants, '>=', 1, 'which Login with Amazon granted');

# The same for a reconciliation's reads: Amazon refuses the token of the
# run's first read, and the next slice asks for a new one (1.5 s) on the
# engine before it reads on.
$grants = $amazon->call('GET', '/_stats')->{token_grants};
$amazon->call('POST', '/_faults', { kind => 'token_expiry', times => 1, path => '/listings/' });
$before = sql(q{SELECT max(finished_at) FROM ves.reconcile_runs});
reads();
@reads = ();
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
ok(wait_until(30, sub { reads() > 0 }), 'a run starts and its first read is refused');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});
check_delivery_waits([ delivery_waits(\&sql, $sink, $other, $store, 30, 'slow-read-token') ],
	30, 2, 1.5, 'the reads\' token');
ok(wait_until(60, sub { sql(qq{SELECT count(*) FROM ves.reconcile_runs WHERE finished_at > '$before'}) == 1 }),
	'the run ends')
  or diag(sql(q{SELECT row_to_json(p)::text FROM ves.reconcile_progress p}));
is(sql(q{SELECT checked || ' ' || unread || ' ' || coalesce(error, 'no error') FROM ves.reconcile_status
         WHERE destination = 'amz'}), "$n 0 no error", 'having read every listing with the new token');
cmp_ok($amazon->call('GET', '/_stats')->{token_grants} - $grants, '>=', 1, 'which the slice obtained');
$amazon->call('POST', '/_faults', { clear => JSON::PP::true });

$amazon->stop;
$sink->stop;
$node->stop;
done_testing();
