# Inbound webhooks and reconciliation against the mock Shopify
# (test/mock/platforms.py), with a sync worker running:
#  * ves.receive_webhook applies a signed inventory_levels/update through the
#    conflict rules; a replay is a duplicate; a tampered body or a foreign
#    secret raises VE050, applies nothing and leaves a security alert that
#    the worker records (with NOTIFY ves_security) although the call failed;
#    an unknown destination is VE012; a role bound to another tenant is VE007.
#  * ves.reconcile reads the platform's counts: equal listings score 1.0,
#    platform-side changes are recorded as the platform's reports and the
#    counts converge; ves.reconcile_status keeps the last run.
#  * a listing marked stale is read again by the worker within seconds, and
#    reconcile_interval runs reconciliation periodically.
#  * changes on both sides at once converge: the push meets a stale
#    compare-and-set, the worker reads the platform, the rules decide and the
#    decided count is pushed back.
use strict;
use warnings;

use JSON::PP;
use HTTP::Tiny;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Digest::SHA qw(hmac_sha256_base64);

use IPC::Run;
use PgVesTest;

my $json = JSON::PP->new->utf8->canonical;
my $node = new_node('inbound_reconcile');
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }
# The error of a statement that must fail, with its SQLSTATE.
sub try_sql { my ($ok, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$_[0]"); return $err; }

# The Shopify mock on a port of its own.
my $repo = $ENV{PGVES_REPO} // '.';
my $dir = PostgreSQL::Test::Utils::tempdir();
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0)
{
	open STDIN, '<', '/dev/null';
	{ exec 'python3', "$repo/test/mock/platforms.py", '--platforms', 'shopify', '--port-file', "$dir/port", '--quiet'; }
	POSIX::_exit(127);
}
END { kill 'TERM', $pid if $pid; }
ok(wait_until(30, sub { -s "$dir/port" }), 'the Shopify mock listens');
chomp(my $port = slurp_file("$dir/port"));
my $http = HTTP::Tiny->new(timeout => 30);
sub mock
{
	my ($method, $path, $body) = @_;
	my $res = $http->request($method, "http://127.0.0.1:$port$path",
		defined $body ? { content => $json->encode($body), headers => { 'content-type' => 'application/json' } } : {});
	die "mock $method $path: $res->{status} $res->{content}\n" unless $res->{success};
	return $json->decode($res->{content});
}

my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';
my $loc = 'gid://shopify/Location/7';
my $item_a = 'gid://shopify/InventoryItem/101';
my $item_b = 'gid://shopify/InventoryItem/102';
sql(qq{SELECT ves.create_destination('shop', 'shopify', 'http://127.0.0.1:$port',
  '{"tenant_id": "$tenant", "store_id": "$store", "access_token": "shpat_pgves_test",
    "webhook_secret": "shopify-webhook-secret", "location_id": "$loc", "max_attempts": 3,
    "backoff_base_ms": 50, "backoff_cap_ms": 200}')});
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-A', 10)});
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-B', 10)});
sql(qq{SELECT ves.map_listing('shop', 'SKU-A', '{"inventory_item_id": "$item_a"}')});
sql(qq{SELECT ves.map_listing('shop', 'SKU-B', '{"inventory_item_id": "$item_b"}')});
# The platform starts with what pg_ves has.
mock('POST', '/_quantities', { quantities => { "$item_a\@$loc" => 10, "$item_b\@$loc" => 10 } });
sub available { return sql(qq{SELECT available FROM ves.get_stock('$tenant', '$store', '$_[0]')}); }
sub platform { return mock('GET', '/_quantities')->{quantities}{"$_[0]\@$loc"}; }

# --- reconciliation -------------------------------------------------------------

is(sql(q{SELECT checked || ' ' || equal || ' ' || mismatched || ' ' || unread || ' ' || consistency_score || ' ' || (error IS NULL)
         FROM ves.reconcile('shop')}), '2 2 0 0 1 true', 'equal counts: 2 checked, 2 equal, score 1');
is(sql(q{SELECT string_agg(sku || ':' || state || ':' || known_quantity, ',' ORDER BY sku) FROM ves.platform_listings}),
	'SKU-A:synced:10,SKU-B:synced:10', 'the listings record what the platform has');

# A sale on the platform (A: 10 -> 7), a restock there (B: 10 -> 15).
mock('POST', '/_quantities', { quantities => { "$item_a\@$loc" => 7, "$item_b\@$loc" => 15 } });
my $r = $json->decode(sql(q{SELECT row_to_json(r)::text FROM ves.reconcile('shop') r}));
is("$r->{checked} $r->{equal} $r->{mismatched} $r->{consistency_score}", '2 0 2 0', 'both differ: score 0');
is(join(',', map { "$_->{sku}:$_->{platform}" } @{ $r->{mismatches} }), 'SKU-A:7,SKU-B:15', 'the mismatches name SKU and platform count');
is(available('SKU-A') . ' ' . available('SKU-B'), '7 15', 'the platform-side changes are recorded through the rules');
is(sql(q{SELECT count(*) FROM ves.events e WHERE e.source = 'shop' AND e.entity_type = 'inventory'}), '2',
	'as inventory events from the destination');
is(sql(q{SELECT checked || ' ' || equal || ' ' || consistency_score FROM ves.reconcile('shop')}), '2 2 1',
	'the next run finds them equal');
is(sql(q{SELECT destination || ' ' || checked || ' ' || consistency_score FROM ves.reconcile_status}), 'shop 2 1',
	'ves.reconcile_status keeps the last run');

# A count of ours on its way (the destination paused, so the push waits):
# the platform still has what we last gave it. That is no platform-side
# change: no report through the rules, no second push queued.
sql(q{SELECT ves.pause_destination('shop')});
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-A', 2)});
my $queued = sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                   WHERE d.name = 'shop' AND o.status = 'pending'});
$r = $json->decode(sql(q{SELECT row_to_json(r)::text FROM ves.reconcile('shop') r}));
is("$r->{checked} $r->{equal} $r->{mismatched}", '2 1 1', 'a push under way is a mismatch');
is(join(',', map { "$_->{sku}:$_->{platform}:$_->{available}:$_->{outcome}" } @{ $r->{mismatches} }), 'SKU-A:7:9:queued',
	'whose outcome is queued');
is(sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
         WHERE d.name = 'shop' AND o.status = 'pending'}), $queued, 'and queues nothing more');
is(sql(q{SELECT count(*) FROM ves.events e WHERE e.source = 'shop' AND e.entity_type = 'inventory'}), '2',
	'nor records a report');
is(sql(q{SELECT known_quantity || ' ' || reported_quantity FROM ves.listings WHERE sku = 'SKU-A'}),
	'7 7', 'the listing records what the platform said');
sql(q{SELECT ves.resume_destination('shop')});
ok(wait_until(30, sub { platform($item_a) == 9 && sql(q{SELECT state FROM ves.listings WHERE sku = 'SKU-A'}) eq 'synced' }),
	'resumed, the queued push levels the platform');
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-A', -2)});
ok(wait_until(30, sub { platform($item_a) == 7 }), 'and the next change reaches it');

# --- webhooks -------------------------------------------------------------------

sub webhook
{
	my (%spec) = @_;
	my $w = mock('POST', '/_webhook', { inventory_item_id => $item_a, location_id => $loc, %spec });
	return ($json->encode($w->{headers}), $w->{body});
}
sub receive
{
	my ($headers, $body, $dest) = @_;
	$dest //= 'shop';
	return qq{SELECT outcome || ' ' || stock_applied || ' ' || orders_recorded || ' ' || ignored
	          FROM ves.receive_webhook('$dest', \$h\$$headers\$h\$, convert_to(\$b\$$body\$b\$, 'UTF8'))};
}
my ($h1, $b1) = webhook(available => 4, webhook_id => 'wh-1');
is(sql(receive($h1, $b1)), 'applied 1 0 0', 'a signed inventory webhook is applied');
is(available('SKU-A'), '4', 'its count is recorded');
is(sql(q{SELECT reported_quantity || ' ' || state FROM ves.platform_listings WHERE sku = 'SKU-A'}), '4 synced',
	'the listing records the report');
is(sql(receive($h1, $b1)), 'duplicate 0 0 0', 'a replay is a duplicate');
is(available('SKU-A'), '4', 'and changes nothing');

my ($h2, $b2) = webhook(available => 3, webhook_id => 'wh-2');
(my $tampered = $b2) =~ s/"available":3/"available":300/;
like(try_sql(receive($h2, $tampered)), qr/VE050.*does not verify/s, 'a tampered body raises VE050');
my ($h3, $b3) = webhook(available => 2, webhook_id => 'wh-3', secret => 'not-the-secret');
like(try_sql(receive($h3, $b3)), qr/VE050/, 'a foreign secret raises VE050');
unlike(try_sql(receive($h3, $b3)), qr/not-the-secret|shopify-webhook-secret/, 'the error names no secret');
is(available('SKU-A'), '4', 'neither applied anything');
ok(wait_until(30, sub { sql(q{SELECT count(*) FROM ves.security_alerts WHERE source = 'shop'}) >= 3 }),
	'the worker recorded their security alerts although the calls failed');
is(sql(qq{SELECT DISTINCT kind || ' ' || tenant_id || ' ' || store_id FROM ves.security_alerts WHERE source = 'shop'}),
	"webhook_signature $tenant $store", 'with kind, tenant and store');
is(sql(q{SELECT count(*) FROM ves.security_alerts WHERE source = 'shop'
         AND (position('shopify-webhook-secret' in convert_from(raw, 'UTF8')) > 0
              OR position('shopify-webhook-secret' in reason) > 0)}), '0',
	'no alert holds the secret');
is(sql(q{SELECT count(*) FROM ves.inbound_deliveries WHERE delivery_id IN ('wh-2', 'wh-3')}), '0',
	'a forgery records no delivery');
like(try_sql(receive($h1, $b1, 'nowhere')), qr/VE012/, 'an unknown destination is VE012');

# Order notices, signed as Shopify signs them: orders/create creates the
# order, orders/fulfilled ships it with the fulfillment's tracking number.
sub order_webhook
{
	my ($topic, $id, $order) = @_;
	my $body = $json->encode({ id => $id, admin_graphql_api_id => "gid://shopify/Order/$id", %$order });
	my $headers = $json->encode({ 'X-Shopify-Topic' => $topic, 'X-Shopify-Webhook-Id' => "$topic-$id",
		'X-Shopify-Hmac-Sha256' => hmac_sha256_base64($body, 'shopify-webhook-secret') . '=' });
	return ($headers, $body);
}
is(sql(receive(order_webhook('orders/create', 5001, { total_price => '9.90' }))), 'applied 0 1 0',
	'orders/create records an order event');
is(sql(receive(order_webhook('orders/fulfilled', 5001,
	{ fulfillments => [ { tracking_number => '1ZTRACK' } ] }))), 'applied 0 1 0', 'orders/fulfilled too');
is(sql(qq{SELECT status || ' ' || tracking_number FROM ves.get_order('$tenant', '5001')}), 'shipped 1ZTRACK',
	'the order follows its state machine, with the platform\'s tracking number');
is(sql(q{SELECT string_agg(event_type || ':' || source, ',' ORDER BY entity_version) FROM ves.events
         WHERE entity_type = 'order' AND entity_id = '5001'}), 'order.created:shop,order.shipped:shop',
	'as events from the destination');
is(sql(receive(order_webhook('orders/cancelled', 5001, {}))), 'applied 0 0 1',
	'a cancel after shipping, which the state machine refuses, is ignored');
is(sql(qq{SELECT status FROM ves.get_order('$tenant', '5001')}), 'shipped', 'and changes nothing');

# An application role bound to another tenant may not feed this one.
sql(q{CREATE ROLE other_app LOGIN IN ROLE ves_writer});
sql(q{SELECT ves.bind_role('other_app', '99999999-9999-4999-8999-999999999999')});
my ($h4, $b4) = webhook(available => 1, webhook_id => 'wh-4');
my ($ok, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n" . receive($h4, $b4),
	extra_params => [ '-U', 'other_app' ]);
like($err, qr/VE007/, 'a role bound to another tenant gets VE007');

# --- the worker: stale listings at once, and periodically -------------------------

mock('POST', '/_quantities', { quantities => { "$item_b\@$loc" => 12 } });
sql(q{UPDATE ves.listings SET state = 'stale' WHERE sku = 'SKU-B'});
ok(wait_until(15, sub { sql(q{SELECT state <> 'stale' AND reported_quantity = 12 FROM ves.listings WHERE sku = 'SKU-B'}) eq 't' }),
	'a stale listing is read again by the worker within seconds');
is(available('SKU-B'), '12', 'and the platform\'s count recorded');

my $before = sql(q{SELECT finished_at FROM ves.reconcile_status WHERE destination = 'shop'});
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "2 seconds"}')});
mock('POST', '/_quantities', { quantities => { "$item_a\@$loc" => 3 } });
ok(wait_until(30, sub { sql(qq{SELECT finished_at > '$before' FROM ves.reconcile_status WHERE destination = 'shop'}) eq 't'
	  && available('SKU-A') eq '3' }), 'reconcile_interval runs reconciliation periodically');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "0"}')});

# Both sides change at once: the worker's push meets Shopify's
# compare-and-set (CHANGE_FROM_QUANTITY_STALE), the listing turns stale,
# the worker reads it within seconds and records the platform's count
# through the rules (the lowest count stands), and pushes the decided count
# back where it differs: every count converges.
sub converged
{
	return sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
	             WHERE d.name = 'shop' AND o.status IN ('pending', 'failed')}) == 0
	  && sql(q{SELECT bool_and(state = 'synced') FROM ves.listings}) eq 't'
	  && platform($item_a) == available('SKU-A') && platform($item_b) == available('SKU-B');
}
ok(wait_until(30, \&converged), 'before: the platform holds every available count');
my $stale_before = mock('GET', '/_stats')->{stale} // 0;
mock('POST', '/_quantities', { quantities => { "$item_a\@$loc" => 1, "$item_b\@$loc" => 20 } });
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-A', -1)});
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-B', -1)});
ok(wait_until(60, \&converged), 'after changes on both sides the counts converge')
  or diag(sql(q{SELECT l.sku, l.state, l.known_quantity, l.reported_quantity, l.last_error FROM ves.listings l}) . "\n"
	  . sql(q{SELECT conflict_type, rule, status, base_state, local_state, remote_state, proposed_state FROM ves.conflicts ORDER BY detected_at}) . "\n"
	  . sql(q{SELECT sku, on_hand, source_seen FROM ves.inventory}) . "\n"
	  . $json->encode(mock('GET', '/_quantities')));
cmp_ok(mock('GET', '/_stats')->{stale} // 0, '>', $stale_before, 'through stale compare-and-sets');
is(available('SKU-A') . ' ' . available('SKU-B'), '1 11', 'to the lower count of each (stock reductions win)');
is(sql(q{SELECT consistency_score FROM ves.reconcile('shop')}), '1', 'and a reconciliation scores 1');

# A read answered with the count from before a push made meanwhile: a
# reconciliation asks Shopify for the counts, which answers them as they
# stand but 1.5 s late; meanwhile a restock of ours is pushed and
# acknowledged. The late answer is older than that push: it is no
# platform-side change, and the count stays ours.
ok(wait_until(30, \&converged), 'a quiet start');
my $a_before = available('SKU-A');
mock('POST', '/_faults', { kind => 'late', delay_ms => 1500, times => 1 });
my $late_run = IPC::Run::start([ 'psql', '-X', '-q', '-At', '-d', $node->connstr('postgres'), '-c',
	q{SELECT checked || ' ' || equal || ' ' || mismatched FROM ves.reconcile('shop')} ],
	'>', \my $late_out, '2>', \my $late_err);
ok(wait_until(10, sub { !@{ mock('GET', '/_stats')->{faults_pending} } }), 'the reconciliation asked for the counts');
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-A', 5)});
ok(wait_until(10, sub { platform($item_a) == $a_before + 5 }), 'the restock reaches Shopify while the answer is on its way');
$late_run->finish;
chomp $late_out;
is($late_out, '1 1 0', 'the late answer counts SKU-B only (equal); SKU-A\'s older count is not used')
  or diag $late_err;
is(available('SKU-A'), $a_before + 5, 'the restock stands');
ok(wait_until(30, \&converged), 'and every count stays in step');

is(mock('GET', '/_stats')->{auth_failures}, 0, 'no request failed authentication');

done_testing();
