# The four commerce platforms kept in step with the database: Shopify
# (GraphQL inventorySetQuantities with @idempotent and changeFromQuantity),
# TikTok Shop (signed requests, refreshed access tokens), Amazon SP-API
# (Login with Amazon tokens, rate-limit answers) and the Meta catalog
# (items_batch), each a mock in test/mock/platforms.py that checks what the
# platform checks. Random inventory traffic on many SKUs (sets,
# adjustments, reservations, releases, changes made on the platforms) runs
# while the platforms throttle, expire tokens, fail with 5xx and reset
# connections, and the worker is killed with SIGKILL. At quiescence every platform holds exactly the
# database's available count of every mapped SKU, no request failed
# authentication, nothing is dead, and no credential is readable back.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('platforms');
# A killed worker makes the postmaster reinitialise; test clusters default to
# shutting down instead.
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->reload;
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';
my $skus = 24;

my %mock = map { $_ => start_platform($_) } qw(shopify tiktok amazon meta);
my %url = map { $_ => $mock{$_}->url('') } keys %mock;
# Login with Amazon grants tokens that last two seconds: the worker renews
# them before they expire, over and over.
$mock{amazon}->call('POST', '/_config', { expires_in => 2 });

# Fast retries: faults are many and short.
my $fast = '"max_attempts": 100, "backoff_base_ms": 20, "backoff_cap_ms": 400, "jitter": 0, '
  . '"breaker_threshold": 0, "rate_limit": 0';
my $ids = qq("tenant_id": "$tenant", "store_id": "$store");
my %options = (
	shopify => qq({$ids, $fast, "access_token": "shpat_pgves_test",
	  "location_id": "gid://shopify/Location/1", "webhook_secret": "shopify-webhook-secret"}),
	tiktok_shop => qq({$ids, $fast, "app_key": "tts_app_key", "app_secret": "tts_app_secret",
	  "access_token": "tts_access_token_0", "refresh_token": "tts_refresh_token",
	  "shop_cipher": "ROW_pgves_test", "warehouse_id": "7000000000000000001", "auth_url": "$url{tiktok}"}),
	amazon_sp => qq({$ids, $fast, "seller_id": "A1PGVESTEST", "marketplace_ids": ["ATVPDKIKX0DER"],
	  "client_id": "amzn1.application-oa2-client.pgvestest", "client_secret": "amzn-client-secret",
	  "refresh_token": "Atzr|pgves-refresh-token", "lwa_url": "$url{amazon}/auth/o2/token",
	  "product_type": "PRODUCT"}),
	meta_catalog => qq({$ids, $fast, "catalog_id": "880000000000001", "access_token": "meta-access-token",
	  "api_version": "v23.0", "app_secret": "meta-app-secret"}),
);
my %mock_of = (shopify => 'shopify', tiktok_shop => 'tiktok', amazon_sp => 'amazon', meta_catalog => 'meta');

# --- options are checked when written ---------------------------------------------

my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT ves.create_destination('x', 'shopify', '$url{shopify}', '{\"access_token\": \"t\"}')");
like($err, qr/VE010|tenant_id|store_id/, 'a platform destination without its store is refused');
($rc, $out, $err) = $node->psql('postgres',
	qq(SELECT ves.create_destination('x', 'amazon_sp', '$url{amazon}', '{$ids, "seller_id": "A", "marketplace_ids": ["ATVPDKIKX0DER"]}')));
like($err, qr/client_id|client_secret|refresh_token/, 'missing Amazon credentials are refused');
($rc, $out, $err) = $node->psql('postgres',
	qq(SELECT ves.create_destination('x', 'shopify', '$url{shopify}', '{$ids, "access_token": "t", "secret": "s"}')));
ok($rc != 0, 'a webhook secret means nothing to a platform and is refused');
is(sql("SELECT count(*) FROM ves.destinations"), '0', 'nothing was written by the refused calls');

for my $kind (sort keys %options)
{
	sql("SELECT ves.create_destination('$kind', '$kind', '$url{$mock_of{$kind}}', '$options{$kind}')");
}
is(sql("SELECT string_agg(kind || ':' || array_to_string(entity_types, ','), ' ' ORDER BY kind) FROM ves.destinations"),
	'amazon_sp:inventory meta_catalog:inventory shopify:inventory tiktok_shop:inventory',
	'platform destinations take inventory events');

# Altering one option keeps the credentials; a bad change is refused whole.
sql(q{SELECT ves.alter_destination('shopify', '{"timeout_ms": 5000}')});
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT ves.alter_destination('amazon_sp', '{"client_secret": null}')});
like($err, qr/client_secret/, 'removing a required credential is refused');

# No credential is readable back.
my $everything = sql("SELECT string_agg(d::text, ' ') FROM ves.destinations d")
  . sql("SELECT string_agg(coalesce(encode(credentials_box, 'escape'), ''), ' ') FROM ves.destination_secrets");
for my $secret (qw(shpat_pgves_test tts_app_secret tts_refresh_token amzn-client-secret meta-access-token
	shopify-webhook-secret))
{
	unlike($everything, qr/\Q$secret\E/, "$secret is sealed");
}

# --- listings ---------------------------------------------------------------------

sub ref_of
{
	my ($kind, $i) = @_;
	return qq({"inventory_item_id": "gid://shopify/InventoryItem/${\ (1000 + $i)}"}) if $kind eq 'shopify';
	return qq({"product_id": "${\ (7300 + $i)}", "sku_id": "${\ (8300 + $i)}"}) if $kind eq 'tiktok_shop';
	return qq({"sku": "SKU-$i"}) if $kind eq 'amazon_sp';
	return qq({"retailer_id": "SKU-$i"});
}

sub key_of
{
	my ($kind, $i) = @_;
	return "gid://shopify/InventoryItem/${\ (1000 + $i)}\@gid://shopify/Location/1" if $kind eq 'shopify';
	return "${\ (7300 + $i)}/${\ (8300 + $i)}\@7000000000000000001" if $kind eq 'tiktok_shop';
	return "SKU-$i";
}

($rc, $out, $err) = $node->psql('postgres',
	q{SELECT ves.map_listing('shopify', 'SKU-1', '{"inventory_item_id": "not-a-gid"}')});
like($err, qr/inventory_item_id/, 'a malformed platform_ref is refused');

# Half the SKUs have stock before they are mapped (mapping pushes it), the
# others get theirs after.
sql(join ";\n", map { "SELECT ves.set_stock('$tenant', '$store', 'SKU-$_', ${\ (10 + $_)})" } 1 .. $skus / 2);
for my $kind (sort keys %options)
{
	sql(join ";\n", map { "SELECT ves.map_listing('$kind', 'SKU-$_', '${\ ref_of($kind, $_)}')" } 1 .. $skus);
}
sql(join ";\n", map { "SELECT ves.set_stock('$tenant', '$store', 'SKU-$_', ${\ (10 + $_)})" } $skus / 2 + 1 .. $skus);
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT ves.map_listing('amazon_sp', 'SKU-1', '{"sku": "SKU-1"}', 'back-room')});
like($err, qr/one count per item|another location/, 'Amazon holds one count per item: one location per SKU');

# Every platform's count of a SKU, from its mock.
sub platform_counts
{
	my ($kind) = @_;
	my $q = $mock{ $mock_of{$kind} }->call('GET', '/_quantities')->{quantities};
	return { map { ("SKU-$_" => $q->{ key_of($kind, $_) }) } 1 .. $skus };
}

sub available
{
	my %a = map { split /\|/ } split /\n/,
	  sql("SELECT sku, available FROM ves.inventory WHERE tenant_id = '$tenant' AND store_id = '$store'");
	return \%a;
}

sub open_rows { return sql("SELECT count(*) FROM ves.outbox WHERE status IN ('pending', 'failed')"); }

sub in_step
{
	my $a = available();
	for my $kind (keys %options)
	{
		my $c = platform_counts($kind);
		for my $sku (keys %$a)
		{
			return 0 unless defined $c->{$sku} && $c->{$sku} == $a->{$sku};
		}
	}
	return 1;
}

# What is left to do when something did not converge.
sub state
{
	my $a = available();
	my $out = sql(
		"SELECT o.destination_id, o.entity_id, o.status, o.attempts, o.last_error, o.lease_until > now(), o.leased_by,
		   o.next_attempt_at > now(), d.paused, d.paused_reason, d.breaker_state, d.last_error
		 FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
		 WHERE o.status IN ('pending', 'failed') LIMIT 10") . "\n";
	for my $kind (sort keys %options)
	{
		my $c = platform_counts($kind);
		$out .= "$kind: " . join(' ', map { "$_=" . ($c->{$_} // 'none') . "/$a->{$_}" }
			grep { ($c->{$_} // -1) != $a->{$_} } sort keys %$a) . "\n";
	}
	$out .= sql("SELECT destination, sku, state, known_quantity, last_error FROM ves.platform_listings WHERE state <> 'synced' LIMIT 10");
	return $out;
}

ok(wait_until(60, sub { open_rows() == 0 && in_step() }), 'the initial counts reach every platform')
  or diag state();
is(sql("SELECT count(*) FROM ves.platform_listings WHERE state = 'synced' AND known_quantity = pushed_quantity"),
	4 * $skus, 'every listing is synced with the count pushed');

# --- random traffic under faults and a kill -9 ----------------------------------------

$mock{shopify}->call('POST', '/_faults', { kind => 'throttle', every => 7, times => undef });
$mock{shopify}->call('POST', '/_faults', { kind => 'reset', every => 11, times => undef });
$mock{tiktok}->call('POST', '/_faults', { kind => '5xx', status => 503, every => 9, times => undef });
$mock{amazon}->call('POST', '/_faults', { kind => 'throttle', every => 8, times => undef });
$mock{meta}->call('POST', '/_faults', { kind => '5xx', status => 500, every => 5, times => undef });

sub traffic
{
	my ($round) = @_;
	sql(<<"SQL");
DO \$\$
DECLARE
  sku text;
  r text;
BEGIN
  PERFORM setseed(0.$round);
  FOR i IN 1 .. 40 LOOP
    sku := 'SKU-' || (1 + floor(random() * $skus))::int;
    BEGIN
      CASE floor(random() * 4)::int
        WHEN 0 THEN PERFORM ves.set_stock('$tenant', '$store', sku, (floor(random() * 50))::bigint);
        WHEN 1 THEN PERFORM ves.adjust_stock('$tenant', '$store', sku, (floor(random() * 11) - 5)::bigint);
        WHEN 2 THEN PERFORM ves.reserve_stock('$tenant', '$store', sku, (1 + floor(random() * 3))::bigint,
                                              'r-$round-' || i);
        ELSE
          SELECT reservation_id INTO r FROM ves.reservations
          WHERE tenant_id = '$tenant' AND status = 'held' ORDER BY random() LIMIT 1;
          IF r IS NOT NULL THEN PERFORM ves.release_stock('$tenant', r); END IF;
      END CASE;
    EXCEPTION WHEN OTHERS THEN
      NULL;  -- not enough stock to reserve or to take away: another round will
    END;
  END LOOP;
END
\$\$;
SQL
}

traffic($_) for 1 .. 5;
$mock{tiktok}->call('POST', '/_expire_tokens');
$mock{amazon}->call('POST', '/_faults', { kind => 'token_expiry', times => 2 });
traffic($_) for 6 .. 8;

my ($victim) = worker_pids($node);
ok(kill('KILL', $victim), "SIGKILL to the worker (pid $victim) mid-sync");
ok(wait_until(60, sub { my ($p) = eval { worker_pids($node) }; $p && $p != $victim }), 'a new worker starts');
traffic($_) for 9 .. 12;

# Platform-side changes (sales and corrections made on the platforms,
# behind the worker's back): Shopify's compare-and-set answers stale and the
# listing is read again at once; the others are read by the periodic
# reconciliation. Each report goes through the conflict rules, and the
# decided count goes back to every platform. Shopify's change is met by a
# push before the reconciliation runs (it would otherwise find the change
# first, and no compare-and-set would go stale).
$mock{shopify}->call('POST', '/_quantities',
	{ quantities => { map { (key_of('shopify', $_) => 3) } 1 .. 4 } });
sql(qq{SELECT ves.adjust_stock('$tenant', '$store', 'SKU-' || g, 1) FROM generate_series(1, 4) g});
ok(wait_until(60, sub { $mock{shopify}->call('GET', '/_stats')->{stale} >= 1 }),
	'Shopify refused a stale compare-and-set');
sql(q{SELECT ves.set_sync_settings('{"reconcile_interval": "1 second"}')});
$mock{tiktok}->call('POST', '/_quantities',
	{ quantities => { map { (key_of('tiktok_shop', $_) => 4) } 5 .. 8 } });
$mock{amazon}->call('POST', '/_quantities', { quantities => { map { (key_of('amazon_sp', $_) => 1) } 9 .. 12 } });
traffic($_) for 13 .. 14;
$mock{meta}->call('POST', '/_expire_tokens', { new_token => 'meta-access-token-2' });
traffic($_) for 15 .. 16;

# Meta's long-lived token was replaced: its destination pauses until an
# operator gives it the new one.
ok(wait_until(60, sub { sql("SELECT paused FROM ves.destinations WHERE name = 'meta_catalog'") eq 't' }),
	'a refused long-lived token pauses the destination');
like(sql("SELECT paused_reason FROM ves.destinations WHERE name = 'meta_catalog'"),
	qr/refused the access token.*alter_destination/, 'the pause says what to do');
unlike(sql("SELECT paused_reason FROM ves.destinations WHERE name = 'meta_catalog'"),
	qr/meta-access-token/, 'without quoting the token');
sql(q{SELECT ves.alter_destination('meta_catalog', '{"access_token": "meta-access-token-2"}')});
sql(q{SELECT ves.resume_destination('meta_catalog')});

# Quiescence: faults off, everything drained.
$mock{$_}->call('POST', '/_faults', { clear => JSON::PP::true }) for keys %mock;
ok(wait_until(120, sub { open_rows() == 0 }), 'the outbox drains') or diag state();
ok(wait_until(30, sub { in_step() }), 'every platform holds the available count of every mapped SKU');
for my $kind (sort keys %options)
{
	my $c = platform_counts($kind);
	my $a = available();
	is_deeply($c, $a, "$kind: every count equals available");
}
is(sql("SELECT count(*) FROM ves.outbox WHERE status = 'dead'"), '0', 'nothing is dead')
  or diag(sql("SELECT d.name, o.attempts, o.last_status, o.last_error FROM ves.outbox o
               JOIN ves.destinations d ON d.id = o.destination_id WHERE o.status = 'dead' LIMIT 5"));
cmp_ok(sql("SELECT count(*) FROM ves.events WHERE source IN ('shopify', 'tiktok_shop', 'amazon_sp')"), '>', 0,
	'platform-side changes came back as platform reports');
for my $m (sort keys %mock)
{
	my $stats = $mock{$m}->call('GET', '/_stats');
	is($stats->{auth_failures}, 0, "$m: no request failed authentication");
}
cmp_ok($mock{tiktok}->call('GET', '/_stats')->{token_grants}, '>=', 1, 'TikTok Shop tokens were refreshed');
cmp_ok($mock{amazon}->call('GET', '/_stats')->{token_grants}, '>=', 2, 'Login with Amazon tokens were renewed');
cmp_ok($mock{shopify}->call('GET', '/_stats')->{throttled}, '>=', 1, 'Shopify throttled and was waited out');

# Requests collapse: far fewer Shopify writes than inventory events.
my $events = sql("SELECT count(*) FROM ves.events WHERE entity_type = 'inventory'");
my $writes = $mock{shopify}->call('GET', '/_stats')->{applied};
cmp_ok($writes, '<', $events, "pending changes collapse ($writes Shopify writes for $events events)");

# SKUs share requests where the platform allows it.
sub most_per_request
{
	my ($m, $pattern) = @_;
	my $most = 0;
	for my $r (@{ $mock{$m}->call('GET', '/_log?after=0')->{requests} })
	{
		my $n = () = ($r->{body} // '') =~ /$pattern/g;
		$most = $n if $n > $most;
	}
	return $most;
}
cmp_ok(most_per_request('shopify', qr/inventoryItemId/), '>', 1, 'one Shopify call sets many SKUs');
cmp_ok(most_per_request('meta', qr/quantity_to_sell_on_facebook/), '>', 1, 'one Meta items_batch updates many SKUs');

# The tokens the worker obtained are sealed too. The server log of this
# test holds every statement it ran (with the credentials it passed, as
# PostgreSQL logs statements): what pg_ves itself logged is the rest.
my $log = join '', grep { !/^\S+ \S+ \S+ \[\d+\] \S*\s*(LOG:  statement:|STATEMENT:)/ }
  split /^(?=\d{4}-\d\d-\d\d )/m, slurp_file($node->logfile);
like($log, qr/pg_ves worker/, 'the log holds what the worker logged');
for my $secret (qw(shpat_pgves_test tts_app_secret amzn-client-secret Atza meta-access-token))
{
	unlike($log, qr/\Q$secret\E/, "the server log never shows $secret");
}
unlike(sql("SELECT string_agg(encode(token_box, 'escape'), ' ') FROM ves.destination_tokens"),
	qr/Atza|tts_access/, 'renewed tokens are sealed');

done_testing();
