# Meta's items_batch answers with a handle before it has applied anything;
# the items it refuses are only known once check_batch_request_status says
# the batch finished. The worker keeps every accepted batch in
# ves.platform_batches with its lines in the order sent and asks about it:
# a listing Meta refused ends 'failed' with Meta's reason (its known count
# unknown), the others stay synced; a batch Meta has not finished yet is
# asked about again; once the item is fixed on Meta's side, the next change
# sends it again and it is synced. The questions keep to the destination's
# rate, and a Meta slow to answer them holds up no delivery.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('meta_follow_up');
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';
my $meta = start_platform('meta');
# Two status checks answer "started" before a batch finishes; SKU-BAD's
# updates are refused per item.
$meta->call('POST', '/_config', { pending_checks => 2, reject_ids => ['rid-bad'] });

sql(qq{SELECT ves.create_destination('meta', 'meta_catalog', '} . $meta->url('') . qq{',
  '{"tenant_id": "$tenant", "store_id": "$store", "catalog_id": "880000000000001",
    "access_token": "meta-access-token", "api_version": "v23.0", "rate_limit": 0}')});
for my $sku (qw(SKU-1 SKU-2 SKU-BAD))
{
	my $rid = $sku eq 'SKU-BAD' ? 'rid-bad' : lc $sku;
	sql(qq{SELECT ves.map_listing('meta', '$sku', '{"retailer_id": "$rid"}')});
}
sql(qq{SELECT ves.set_stock('$tenant', '$store', sku, 7) FROM unnest(ARRAY['SKU-1', 'SKU-2', 'SKU-BAD']) sku});

sub state_of { return sql(qq{SELECT state || '|' || coalesce(last_error, '') FROM ves.listings WHERE sku = '$_[0]'}); }

ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.platform_batches}) >= 1 }),
	'an accepted items_batch is kept with its handle');
like(sql(q{SELECT string_agg(handle, ',') FROM ves.platform_batches}), qr/^AcPgVes/, 'the handle Meta gave');

ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.platform_batches WHERE status = 'pending'}) == 0 }),
	'every batch is followed up until Meta says it finished')
  or diag sql(q{SELECT handle, status, checks, last_error FROM ves.platform_batches});
cmp_ok(sql(q{SELECT max(checks) FROM ves.platform_batches}), '>=', 3,
	'a batch that had not finished was asked about again');
like(state_of('SKU-BAD'), qr/^failed\|Meta refused the item update: Item update rejected/,
	'the refused listing is failed with Meta\'s reason');
is(sql(q{SELECT known_quantity IS NULL FROM ves.listings WHERE sku = 'SKU-BAD'}), 't', 'and its count unknown');
is(state_of('SKU-1'), 'synced|', 'the other listings of the batch stay synced');
is(state_of('SKU-2'), 'synced|', 'all of them');
is(sql(q{SELECT sum(failed_items) = count(*) FILTER (WHERE items @> '[{"sku": "SKU-BAD"}]')
         FROM ves.platform_batches WHERE status = 'finished'}), 't',
	'each batch records one failed item per line of SKU-BAD it carried, no other');
is($meta->call('GET', '/_quantities')->{quantities}{'sku-1'}, 7, 'Meta has the accepted counts');

# Meta's side is fixed; the next change sends the SKU again.
$meta->call('POST', '/_config', { reject_ids => [], pending_checks => 0 });
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-BAD', -1)});
ok(wait_until(60, sub { state_of('SKU-BAD') eq 'synced|' && ($meta->call('GET', '/_quantities')->{quantities}{'rid-bad'} // -1) == 6 }),
	'once Meta accepts it, the listing is synced with the count')
  or diag state_of('SKU-BAD');
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.platform_batches WHERE status = 'pending'}) == 0 }),
	'and its batch is followed up too');
is(state_of('SKU-BAD'), 'synced|', 'a finished batch without errors leaves it synced');

# The questions are platform calls like any other: a destination's rate
# limit holds for them. Twelve batches of a second destination (2 calls a
# second, burst 2) fall due at once; Meta does not know their handles, so
# each stays pending and is asked again later.
sql(qq{SELECT ves.create_destination('meta_paced', 'meta_catalog', '} . $meta->url('') . qq{',
  '{"tenant_id": "$tenant", "store_id": "$store", "catalog_id": "880000000000002",
    "access_token": "meta-access-token", "api_version": "v23.0", "rate_limit": 2, "burst": 2,
    "concurrency": 4}')});
sql(q{INSERT INTO ves.platform_batches (destination_id, tenant_id, handle, items)
      SELECT d.id, d.tenant_id, 'paced-' || g, '[]'
      FROM ves.destinations d, generate_series(1, 12) g WHERE d.name = 'meta_paced'});
ok(wait_until(60, sub { sql(q{SELECT count(*) FILTER (WHERE checks >= 1) FROM ves.platform_batches
                              WHERE handle LIKE 'paced-%'}) == 12 }),
	'every due batch of the rate-limited destination is asked about')
  or diag sql(q{SELECT string_agg(handle || ':' || checks, ' ') FROM ves.platform_batches WHERE handle LIKE 'paced-%'});
# Paused, the destination's batches are asked about no more (a round under
# way ends within its one-second budget).
sql(q{SELECT ves.pause_destination('meta_paced')});
sleep 3;
my @questions = grep { $_->{path} =~ /check_batch_request_status/ && $_->{path} =~ /handle=(paced-\d+)/ }
  @{ $meta->call('GET', '/_requests')->{requests} };
my @asked = sort { $a <=> $b } map { $_->{time} } @questions;
my %times_asked;
$times_asked{ ($_->{path} =~ /handle=(paced-\d+)/)[0] }++ for @questions;
is(sql(q{SELECT string_agg(handle || ':' || checks, ' ' ORDER BY handle) FROM ves.platform_batches
         WHERE handle LIKE 'paced-%'}),
	join(' ', map { "$_:" . ($times_asked{$_} // 0) } sort map { "paced-$_" } 1 .. 12),
	'each batch counts the questions Meta saw, not the rounds that had no room for it');
cmp_ok(scalar(@asked), '>=', 12, 'the mock saw the questions');
my $busiest = 0;
for my $i (0 .. $#asked)
{
	my $n = grep { $_ >= $asked[$i] && $_ < $asked[$i] + 1.0 } @asked;
	$busiest = $n if $n > $busiest;
}
# Burst 2 plus 2 refilled within any second; one more for timer slack.
cmp_ok($busiest, '<=', 5, 'no second saw more questions than the rate and burst allow')
  or diag "questions at: @asked";
cmp_ok($asked[11] - $asked[0], '>=', (12 - 2) / 2 * 0.9, 'the twelve questions were spread over time');

# The questions go out on the worker's own HTTP engine beside its
# deliveries: a platform slow to answer them holds up no delivery. Four
# batches of a third destination, whose questions Meta answers 0.8 s late
# (one at a time), are asked about while an event is appended every 0.1 s
# for a webhook destination. Had a round waited for its answers, each would
# hold every delivery up for over 2 s.
my $other = '33333333-3333-4333-8333-333333333333';
my $sink = start_sink();
sql(q{SELECT ves.create_destination('hook', 'webhook', '} . $sink->url('/hook')
	  . qq{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tenant_id": "$other"}')});
sql(qq{SELECT ves.create_destination('meta_slow', 'meta_catalog', '} . $meta->url('') . qq{',
  '{"tenant_id": "$tenant", "store_id": "$store", "catalog_id": "880000000000003",
    "access_token": "meta-access-token", "api_version": "v23.0", "rate_limit": 0, "concurrency": 2}')});
$meta->call('POST', '/_faults',
	{ kind => 'delay', delay_ms => 800, times => undef, path => '/v23.0/880000000000003/' });
sql(q{INSERT INTO ves.platform_batches (destination_id, tenant_id, handle, items)
      SELECT d.id, d.tenant_id, 'slow-' || g, '[]'
      FROM ves.destinations d, generate_series(1, 4) g WHERE d.name = 'meta_slow'});
sub slow_questions
{
	return scalar grep { $_->{path} =~ /check_batch_request_status/ && $_->{path} =~ /handle=slow-/ }
	  @{ $meta->call('GET', '/_requests')->{requests} };
}
ok(wait_until(30, sub { slow_questions() >= 1 }), 'the slow destination\'s batches are asked about');
check_delivery_waits([ delivery_waits(\&sql, $sink, $other, $store, 30, 'slow-meta') ],
	30, 2, 0.8, 'Meta\'s answers');
ok(wait_until(30, sub { sql(q{SELECT count(*) FROM ves.platform_batches WHERE handle LIKE 'slow-%' AND checks >= 1}) == 4 }),
	'and each slow batch is asked about and recorded')
  or diag sql(q{SELECT string_agg(handle || ':' || checks, ' ') FROM ves.platform_batches WHERE handle LIKE 'slow-%'});
$meta->call('POST', '/_faults', { clear => JSON::PP::true });
$sink->stop;

# Only administrators read the batches; a reader of the tenant does not.
sql(q{CREATE ROLE batch_reader LOGIN IN ROLE ves_reader});
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM ves.platform_batches',
	extra_params => [ '-U', 'batch_reader' ]);
like($err, qr/permission denied/, 'ves_reader cannot read ves.platform_batches');

done_testing();
