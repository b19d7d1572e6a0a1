# Inbound webhooks and reconciliation against the mock TikTok Shop, Meta
# catalog and Amazon SP-API (test/mock/platforms.py), with a sync worker
# running, as 026 does for Shopify:
#  * TikTok Shop: a signed ORDER_STATUS_CHANGE (Authorization = hex
#    HMAC-SHA256 under app_secret over app_key + body) records the order's
#    events; a replay is a duplicate; a tampered body or a foreign secret
#    raises VE050, applies nothing and leaves a security alert.
#  * Meta catalog: a signed stock change (X-Hub-Signature-256) is recorded
#    as the platform's report (one older than the last report is ignored),
#    a commerce_orders change as an order event; a replay is a duplicate; a
#    tampered body or a foreign secret is VE050 with an alert.
#  * Amazon SP-API sends no webhooks: receive_webhook refuses it (VE051).
#  * ves.reconcile of each: equal counts score 1.0; counts changed on the
#    platform behind the worker's back are recorded as the platform's
#    reports, the next run scores 1 again, and after a further local change
#    the platform and ves.get_stock agree.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use Digest::SHA qw(hmac_sha256_hex);

use PgVesTest;

my $json = JSON::PP->new->utf8->canonical;
my $node = new_node('inbound_platforms');
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }
# The error of a statement that must fail, with its SQLSTATE.
sub try_sql { my ($ok, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$_[0]"); return $err; }

my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';
my $ids = qq("tenant_id": "$tenant", "store_id": "$store");
my $fast = '"max_attempts": 5, "backoff_base_ms": 50, "backoff_cap_ms": 200';
my $warehouse = '7000000000000000001';

my %mock = map { $_ => start_platform($_) } qw(tiktok amazon meta);
my %url = map { $_ => $mock{$_}->url('') } keys %mock;

# Each platform its own two SKUs, so that a change on one platform is
# checked against that platform only.
my %dest = (
	tiktok => 'tts', amazon => 'amz', meta => 'fb');
sql(qq{SELECT ves.create_destination('tts', 'tiktok_shop', '$url{tiktok}', '{$ids, $fast,
  "app_key": "tts_app_key", "app_secret": "tts_app_secret", "access_token": "tts_access_token_0",
  "refresh_token": "tts_refresh_token", "shop_cipher": "ROW_pgves_test", "warehouse_id": "$warehouse",
  "auth_url": "$url{tiktok}"}')});
sql(qq{SELECT ves.create_destination('amz', 'amazon_sp', '$url{amazon}', '{$ids, $fast,
  "seller_id": "A1PGVESTEST", "marketplace_ids": ["ATVPDKIKX0DER"],
  "client_id": "amzn1.application-oa2-client.pgvestest", "client_secret": "amzn-client-secret",
  "refresh_token": "Atzr|pgves-refresh-token", "lwa_url": "$url{amazon}/auth/o2/token",
  "product_type": "PRODUCT"}')});
sql(qq{SELECT ves.create_destination('fb', 'meta_catalog', '$url{meta}', '{$ids, $fast,
  "catalog_id": "880000000000001", "access_token": "meta-access-token", "api_version": "v23.0",
  "app_secret": "meta-app-secret"}')});

my %skus = (tiktok => [ 'TT-A', 'TT-B' ], amazon => [ 'AM-A', 'AM-B' ], meta => [ 'FB-A', 'FB-B' ]);
my %tt_ref = ('TT-A' => [ 7301, 8301 ], 'TT-B' => [ 7302, 8302 ]);
sub ref_of
{
	my ($p, $sku) = @_;
	return qq({"product_id": "$tt_ref{$sku}[0]", "sku_id": "$tt_ref{$sku}[1]"}) if $p eq 'tiktok';
	return qq({"sku": "$sku"}) if $p eq 'amazon';
	return qq({"retailer_id": "$sku"});
}
# The key of a SKU in the mock's /_quantities.
sub key_of
{
	my ($p, $sku) = @_;
	return "$tt_ref{$sku}[0]/$tt_ref{$sku}[1]\@$warehouse" if $p eq 'tiktok';
	return $sku;
}
sub available { return sql(qq{SELECT available FROM ves.get_stock('$tenant', '$store', '$_[0]')}); }
sub platform { my ($p, $sku) = @_; return $mock{$p}->call('GET', '/_quantities')->{quantities}{ key_of($p, $sku) }; }
sub set_platform
{
	my ($p, %q) = @_;
	$mock{$p}->call('POST', '/_quantities', { quantities => { map { (key_of($p, $_) => $q{$_}) } keys %q } });
}
# In step: nothing left to send, every listing synced, the platform holds
# every count, and no batch the platform accepted is still to be asked
# about (Meta): a reconciliation skips a differing read of a listing in a
# pending batch, so the runs below would depend on when the worker's
# follow-up (every 2 s) came.
sub converged
{
	my ($p) = @_;
	return sql(qq{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
	              WHERE d.name = '$dest{$p}' AND o.status IN ('pending', 'failed')}) == 0
	  && sql(qq{SELECT count(*) FROM ves.platform_batches b JOIN ves.destinations d ON d.id = b.destination_id
	              WHERE d.name = '$dest{$p}' AND b.status = 'pending'}) == 0
	  && sql(qq{SELECT bool_and(state = 'synced') FROM ves.platform_listings WHERE destination = '$dest{$p}'}) eq 't'
	  && !grep { (platform($p, $_) // -1) != available($_) } @{ $skus{$p} };
}
sub state_of
{
	my ($p) = @_;
	return sql(qq{SELECT sku, state, known_quantity, reported_quantity, last_error FROM ves.platform_listings
	              WHERE destination = '$dest{$p}'}) . "\n" . $json->encode($mock{$p}->call('GET', '/_quantities'));
}

for my $p (sort keys %skus)
{
	for my $sku (@{ $skus{$p} })
	{
		sql(qq{SELECT ves.set_stock('$tenant', '$store', '$sku', 10)});
		sql(qq{SELECT ves.map_listing('$dest{$p}', '$sku', '${\ ref_of($p, $sku)}')});
	}
}
for my $p (sort keys %skus)
{
	ok(wait_until(60, sub { converged($p) }), "$p: the worker pushes the initial counts") or diag state_of($p);
}

# --- reconciliation, per platform ------------------------------------------------

for my $p (sort keys %skus)
{
	my ($sa, $sb) = @{ $skus{$p} };
	my $d = $dest{$p};
	is(sql(qq{SELECT checked || ' ' || equal || ' ' || mismatched || ' ' || unread || ' ' || consistency_score
	          || ' ' || (error IS NULL) FROM ves.reconcile('$d')}), '2 2 0 0 1 true',
		"$p: equal counts: 2 checked, 2 equal, score 1");
	is(sql(qq{SELECT destination || ' ' || checked || ' ' || consistency_score FROM ves.reconcile_status
	          WHERE destination = '$d'}), "$d 2 1", "$p: ves.reconcile_status keeps the run");

	# A sale on the platform (A: 10 -> 7), a restock there (B: 10 -> 15),
	# behind the worker's back.
	set_platform($p, $sa => 7, $sb => 15);
	my $r = $json->decode(sql(qq{SELECT row_to_json(r)::text FROM ves.reconcile('$d') r}));
	is("$r->{checked} $r->{equal} $r->{mismatched} $r->{unread} $r->{consistency_score}", '2 0 2 0 0',
		"$p: both differ: score 0");
	is(join(',', map { "$_->{sku}:$_->{platform}" } sort { $a->{sku} cmp $b->{sku} } @{ $r->{mismatches} }),
		"$sa:7,$sb:15", "$p: the mismatches name SKU and platform count");
	is(available($sa) . ' ' . available($sb), '7 15', "$p: the platform-side changes are recorded through the rules");
	is(sql(qq{SELECT count(*) FROM ves.events WHERE source = '$d' AND entity_type = 'inventory'}), '2',
		"$p: as inventory events from the destination");
	is(sql(qq{SELECT string_agg(sku || ':' || reported_quantity, ',' ORDER BY sku) FROM ves.platform_listings
	          WHERE destination = '$d'}), "$sa:7,$sb:15", "$p: the listings record the platform's reports");
	is(sql(qq{SELECT checked || ' ' || equal || ' ' || consistency_score FROM ves.reconcile('$d')}), '2 2 1',
		"$p: the next run finds them equal");
	is(sql(qq{SELECT consistency_score FROM ves.reconcile_status WHERE destination = '$d'}), '1',
		"$p: and ves.reconcile_status says so");

	# A local change after the platform's: pushed, the counts converge.
	sql(qq{SELECT ves.adjust_stock('$tenant', '$store', '$sa', -2)});
	ok(wait_until(60, sub { converged($p) }), "$p: after a local change the platform and ves.get_stock agree")
	  or diag state_of($p);
	is(platform($p, $sa) . ' ' . platform($p, $sb), '5 15', "$p: the platform holds 5 and 15");
}

# --- webhooks -------------------------------------------------------------------

sub receive
{
	my ($dest, $headers, $body) = @_;
	my $h = $json->encode($headers);
	return qq{SELECT outcome || ' ' || stock_applied || ' ' || orders_recorded || ' ' || ignored
	          FROM ves.receive_webhook('$dest', \$h\$$h\$h\$, convert_to(\$b\$$body\$b\$, 'UTF8'))};
}
sub alerts { return sql(qq{SELECT count(*) FROM ves.security_alerts WHERE source = '$_[0]'}); }

# TikTok Shop: order status changes, signed over app_key + body.
sub tiktok_webhook
{
	my ($id, $order, $status, %data) = @_;
	my $body = $json->encode({ type => 1, tts_notification_id => $id, shop_id => '7494000000000000001',
		timestamp => time, data => { order_id => $order, order_status => $status, %data } });
	return ({ Authorization => hmac_sha256_hex("tts_app_key$body", 'tts_app_secret') }, $body);
}
my ($th1, $tb1) = tiktok_webhook('tts-n-1', '576000000000000001', 'AWAITING_SHIPMENT');
is($mock{tiktok}->call('POST', '/_sign_webhook', { body => $tb1 })->{headers}{Authorization}, $th1->{Authorization},
	'TikTok Shop: the test signs as the platform (the mock) does');
is(sql(receive('tts', $th1, $tb1)), 'applied 0 1 0', 'TikTok Shop: a signed ORDER_STATUS_CHANGE is applied');
is(sql(qq{SELECT count(*) FROM ves.get_order('$tenant', '576000000000000001')}), '1', 'TikTok Shop: the order exists');
is(sql(receive('tts', $th1, $tb1)), 'duplicate 0 0 0', 'TikTok Shop: a replay is a duplicate');
my ($th2, $tb2) = tiktok_webhook('tts-n-2', '576000000000000001', 'IN_TRANSIT', tracking_number => 'TT-TRACK-1');
is(sql(receive('tts', $th2, $tb2)), 'applied 0 1 0', 'TikTok Shop: IN_TRANSIT is applied');
is(sql(qq{SELECT status || ' ' || tracking_number FROM ves.get_order('$tenant', '576000000000000001')}),
	'shipped TT-TRACK-1', 'TikTok Shop: the order is shipped with the platform\'s tracking number');
is(sql(q{SELECT string_agg(event_type || ':' || source, ',' ORDER BY entity_version) FROM ves.events
         WHERE entity_type = 'order' AND entity_id = '576000000000000001'}), 'order.created:tts,order.shipped:tts',
	'TikTok Shop: as events from the destination');

my ($th3, $tb3) = tiktok_webhook('tts-n-3', '576000000000000002', 'AWAITING_SHIPMENT');
(my $ttampered = $tb3) =~ s/576000000000000002/576000000000000003/;
like(try_sql(receive('tts', $th3, $ttampered)), qr/VE050/, 'TikTok Shop: a tampered body raises VE050');
my ($th4, $tb4) = tiktok_webhook('tts-n-4', '576000000000000004', 'AWAITING_SHIPMENT');
$th4->{Authorization} = hmac_sha256_hex("tts_app_key$tb4", 'not-the-secret');
my $terr = try_sql(receive('tts', $th4, $tb4));
like($terr, qr/VE050/, 'TikTok Shop: a foreign secret raises VE050');
unlike($terr, qr/tts_app_secret/, 'TikTok Shop: the error names no secret');
is(sql(q{SELECT count(*) FROM ves.orders WHERE order_id IN ('576000000000000002', '576000000000000003', '576000000000000004')}),
	'0', 'TikTok Shop: neither applied anything');
is(sql(q{SELECT count(*) FROM ves.inbound_deliveries WHERE delivery_id IN ('tts-n-3', 'tts-n-4')}), '0',
	'TikTok Shop: a forgery records no delivery');
ok(wait_until(30, sub { alerts('tts') >= 2 }), 'TikTok Shop: the worker recorded the security alerts');
is(sql(qq{SELECT DISTINCT kind || ' ' || tenant_id || ' ' || store_id FROM ves.security_alerts WHERE source = 'tts'}),
	"webhook_signature $tenant $store", 'TikTok Shop: with kind, tenant and store');

# Meta catalog: a stock change and an order notice, signed over the body.
sub meta_webhook
{
	my (@changes) = @_;
	# Entry times in milliseconds: the report is not older than the last push.
	my $body = $json->encode({ object => 'catalog', entry => [ { id => '880000000000001',
		time => int(Time::HiRes::time() * 1000), changes => \@changes } ] });
	return ({ 'X-Hub-Signature-256' => 'sha256=' . hmac_sha256_hex($body, 'meta-app-secret') }, $body);
}
# A sale on Meta: 5 -> 4, and its webhook.
set_platform('meta', 'FB-A' => 4);
my ($mh1, $mb1) = meta_webhook({ field => 'product_items',
	value => { retailer_id => 'FB-A', quantity_to_sell_on_facebook => 4 } });
is($mock{meta}->call('POST', '/_sign_webhook', { body => $mb1 })->{headers}{'X-Hub-Signature-256'},
	$mh1->{'X-Hub-Signature-256'}, 'Meta: the test signs as the platform (the mock) does');
is(sql(receive('fb', $mh1, $mb1)), 'applied 1 0 0', 'Meta: a signed stock change is applied');
is(available('FB-A'), '4', 'Meta: its count is recorded');
is(sql(q{SELECT reported_quantity || ' ' || state FROM ves.platform_listings WHERE destination = 'fb' AND sku = 'FB-A'}),
	'4 synced', 'Meta: the listing records the report');
is(sql(q{SELECT count(*) FROM ves.events WHERE source = 'fb' AND entity_type = 'inventory'}), '3',
	'Meta: as an inventory event from the destination');
is(sql(receive('fb', $mh1, $mb1)), 'duplicate 0 0 0', 'Meta: a replay is a duplicate');
is(available('FB-A'), '4', 'Meta: and changes nothing');

# A report older than the listing's last report (a late retry of an old
# delivery) is stale: it changes nothing.
my $old_body = $json->encode({ object => 'catalog', entry => [ { id => '880000000000001', time => time - 3600,
	changes => [ { field => 'product_items', value => { retailer_id => 'FB-A', quantity_to_sell_on_facebook => 9 } } ] } ] });
is(sql(receive('fb', { 'X-Hub-Signature-256' => 'sha256=' . hmac_sha256_hex($old_body, 'meta-app-secret') }, $old_body)),
	'applied 0 0 1', 'Meta: a report older than the last one is ignored');
is(available('FB-A'), '4', 'Meta: a stale report changes nothing');

my ($mh2, $mb2) = meta_webhook({ field => 'commerce_orders', value => { order_id => 'fb-order-1', event => 'CREATED' } });
is(sql(receive('fb', $mh2, $mb2)), 'applied 0 1 0', 'Meta: a commerce_orders change records an order event');
is(sql(q{SELECT string_agg(event_type || ':' || source, ',') FROM ves.events
         WHERE entity_type = 'order' AND entity_id = 'fb-order-1'}), 'order.created:fb', 'Meta: from the destination');
my ($mh3, $mb3) = meta_webhook({ field => 'product_items', value => { retailer_id => 'FB-B', quantity_to_sell_on_facebook => 1 } });
my $mh3_wrong = { 'X-Hub-Signature-256' => 'sha256=' . hmac_sha256_hex($mb3, 'not-the-secret') };
like(try_sql(receive('fb', $mh3_wrong, $mb3)), qr/VE050/, 'Meta: a foreign secret raises VE050');
(my $mtampered = $mb3) =~ s/"quantity_to_sell_on_facebook":1/"quantity_to_sell_on_facebook":100/;
my $merr = try_sql(receive('fb', $mh3, $mtampered));
like($merr, qr/VE050/, 'Meta: a tampered body raises VE050');
unlike($merr, qr/meta-app-secret/, 'Meta: the error names no secret');
is(available('FB-B'), '15', 'Meta: neither applied anything');
ok(wait_until(30, sub { alerts('fb') >= 2 }), 'Meta: the worker recorded the security alerts');
is(sql(q{SELECT count(*) FROM ves.security_alerts WHERE source IN ('tts', 'fb')
         AND (position('meta-app-secret' in convert_from(raw, 'UTF8')) > 0 OR position('tts_app_secret' in reason) > 0
              OR position('meta-app-secret' in reason) > 0)}), '0', 'no alert holds a secret');

# Amazon sends no webhooks.
like(try_sql(receive('amz', { 'X-Anything' => 'x' }, '{"sku": "AM-A"}')), qr/VE051/,
	'Amazon SP-API: receive_webhook is VE051 (the kind receives no webhooks)');

# After all this, every platform and ves.get_stock agree.
for my $p (sort keys %skus)
{
	ok(wait_until(30, sub { converged($p) }), "$p: at the end the platform and ves.get_stock agree")
	  or diag state_of($p);
	is(sql(qq{SELECT consistency_score FROM ves.reconcile('$dest{$p}')}), '1', "$p: a last reconciliation scores 1");
}
for my $p (sort keys %mock)
{
	is($mock{$p}->call('GET', '/_stats')->{auth_failures}, 0, "$p: no request failed authentication");
}

done_testing();
