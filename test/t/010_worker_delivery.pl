# The sync worker delivers every outbox row with no failures configured:
# each event reaches each destination whose filter it matches exactly once,
# in entity-version order per entity, with the body being the event's VES v1
# export, Standard Webhooks headers whose signatures verify with tools that
# know nothing of pg_ves (Digest::SHA for v1 HMAC, the openssl CLI for v1a
# Ed25519), and an Idempotency-Key on plain http destinations. A commit wakes
# an idle worker at once rather than at its next safety poll.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use JSON::PP;
use MIME::Base64 qw(decode_base64 encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

my $json = JSON::PP->new->utf8->canonical;

# --- signature checks, independent of pg_ves ----------------------------------

# Standard Webhooks v1: base64(HMAC-SHA256(key, "id.timestamp.body")) where
# key is the base64-decoded part of the whsec_ secret.
sub v1_valid
{
	my ($secret, $id, $ts, $body, $header) = @_;
	(my $key = $secret) =~ s/^whsec_//;
	my $want = encode_base64(hmac_sha256("$id.$ts.$body", decode_base64($key)), '');
	return scalar grep { $_ eq "v1,$want" } split / /, $header // '';
}

# The Standard Webhooks specification's published v1 example pins the
# checker itself before it judges pg_ves.
my $whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
ok(v1_valid($whsec, 'msg_p5jXN8AQM9LWM0D4loKWxJek', '1614265330', '{"test": 2432232314}',
		'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='),
	'the test\'s v1 checker accepts the Standard Webhooks example');
ok(!v1_valid($whsec, 'msg_p5jXN8AQM9LWM0D4loKWxJek', '1614265330', '{"test": 2432232315}',
		'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='),
	'and refuses it for a changed body');

# Standard Webhooks v1a: Ed25519 over the same content. The whsk_ secret is a
# 32-byte seed; openssl derives the public key from it (PKCS#8 DER wrapping)
# and verifies raw-input signatures with it (SubjectPublicKeyInfo DER).
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $seed = pack('C*', map { ($_ * 7 + 3) % 256 } 0 .. 31);
my $whsk = 'whsk_' . encode_base64($seed, '');
my $have_openssl = system('openssl version >/dev/null 2>&1') == 0;
my $public_der;
if ($have_openssl)
{
	write_binary("$tmp/seed.der", pack('H*', '302e020100300506032b657004220420') . $seed);
	$have_openssl = system("openssl pkey -inform DER -in $tmp/seed.der -pubout -outform DER -out $tmp/pub.der 2>$tmp/pkey.err") == 0
	  && -s "$tmp/pub.der" == 44;
	$public_der = "$tmp/pub.der";
}

sub v1a_valid
{
	my ($id, $ts, $body, $header) = @_;
	write_binary("$tmp/msg.bin", "$id.$ts.$body");
	for my $entry (split / /, $header // '')
	{
		next unless $entry =~ /^v1a,(.+)$/;
		write_binary("$tmp/sig.bin", decode_base64($1));
		return 1 if system("openssl pkeyutl -verify -pubin -keyform DER -inkey $public_der -rawin"
			  . " -in $tmp/msg.bin -sigfile $tmp/sig.bin >/dev/null 2>&1") == 0;
	}
	return 0;
}

sub write_binary
{
	my ($path, $bytes) = @_;
	open my $fh, '>:raw', $path or die "$path: $!";
	print $fh $bytes;
	close $fh;
}

# --- the cluster, the sink and the destinations -------------------------------

my $node = new_node('worker_delivery');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();

ok(enable_worker($node), 'a sync worker starts for the database listed in ves.databases');
is( sql(q{SELECT string_agg(backend_type || ':' || datname, ',')
          FROM pg_stat_activity WHERE backend_type LIKE 'pg_ves%' AND datname IS NOT NULL}),
	'pg_ves worker:postgres',
	'pg_stat_activity shows one worker, in postgres, with a backend_type starting with pg_ves');
is(sql(q{SELECT count(*) FROM ves.worker_status WHERE database = 'postgres' AND pid IS NOT NULL AND NOT stopped}),
	1, 'ves.worker_status lists the running worker');

sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')});

my $t1 = '00000000-0000-0000-0000-0000000000c1';
my $t2 = '00000000-0000-0000-0000-0000000000c2';
my $store = '00000000-0000-0000-0000-0000000000d1';

# Each destination gets its own path on the sink; $dest{name} is the SQL
# predicate over ves.events that its filter stands for.
my %dest = (
	wh => 'true',
	plain => 'true',
	orders => q{entity_type = 'Order'},
	created => q{event_type IN ('order.created', 'product.created')},
	combo => q{entity_type = 'Product' AND event_type = 'product.updated'},
	v1a => "tenant_id = '$t2'",);
sub dest_sql
{
	my ($name, $kind, $options) = @_;
	return "SELECT ves.create_destination('$name', '$kind', '" . $sink->url("/$name") . "', '$options')";
}
sql(dest_sql('wh', 'webhook', qq({"secret": "$whsec"})));
sql(dest_sql('plain', 'http', '{}'));
sql(dest_sql('orders', 'webhook', qq({"secret": "$whsec", "entity_types": ["Order"]})));
sql(dest_sql('created', 'http', '{"event_types": ["order.created", "product.created"]}'));
sql(dest_sql('combo', 'http', '{"entity_types": ["Product"], "event_types": ["product.updated"]}'));
sql(dest_sql('v1a', 'webhook', qq({"secret": "$whsk", "tenant_id": "$t2"})));

# --- 300 events over 10 entities in 10 transactions ----------------------------

my @entities = (
	(map { [ $t1, 'Order', "o-$_" ] } 1 .. 5),
	(map { [ $t1, 'Product', "p-$_" ] } 1 .. 3),
	[ $t2, 'Order', 'o-t2' ],
	[ $t2, 'Product', 'p-t2' ]);
my %version;
for my $tx (1 .. 10)
{
	my @stmts;
	for my $round (1 .. 3)
	{
		for my $e (@entities)
		{
			my ($tenant, $type, $id) = @$e;
			my $v = ++$version{$id};
			my $event_type = lc($type) . ($v == 1 ? '.created' : '.updated');
			push @stmts, "SELECT FROM ves.append('$tenant', '$store', '$type', '$id', '$event_type',"
			  . " '{\"n\": $v, \"tx\": $tx, \"note\": \"caf\\u00e9 \\\"quoted\\\"\"}', $v - 1)";
		}
	}
	sql(join(";\n", 'BEGIN', @stmts, 'COMMIT'));
	usleep(100_000) if $tx % 3 == 0;    # some transactions land mid-drain
}
is(sql('SELECT count(*) FROM ves.events'), 300, '300 events appended');

my %expected;    # destination -> number of matching events
for my $name (sort keys %dest)
{
	$expected{$name} = sql("SELECT count(*) FROM ves.events WHERE $dest{$name}");
}
my $total = 0;
$total += $_ for values %expected;
ok( wait_until(60, sub { scalar($sink->requests) >= $total }),
	"the sink received $total requests (one per event and matching destination)");
ok( wait_until(30, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'every outbox row is synced');
usleep(500_000);    # a duplicate would arrive now
is(scalar($sink->requests), $total, 'no request beyond one per (event, destination)');

# What each event must look like on the wire.
my %event;    # event_id -> {body, version, entity}
for my $row (split /\n/, sql(q{SELECT event_id || '|' || entity_version || '|' || entity_type || '/' || entity_id
                                     || '|' || ves.canonical_json(ves.export_event(event_id)) FROM ves.events}))
{
	my ($id, $v, $entity, $body) = split /\|/, $row, 4;
	$event{$id} = { body => $body, version => $v, entity => $entity };
}

for my $name (sort keys %dest)
{
	my @reqs = $sink->requests("/$name");
	my $kind = $name =~ /^(plain|created|combo)$/ ? 'http' : 'webhook';
	my $id_header = $kind eq 'http' ? 'idempotency-key' : 'webhook-id';
	my %want = map { $_ => 1 } split /\n/, sql("SELECT event_id FROM ves.events WHERE $dest{$name}");
	my (%got, @bad_id, @bad_body, @bad_sig, @bad_headers, %order);
	for my $r (@reqs)
	{
		my $h = $r->{headers};
		my $id = $h->{$id_header} // '';
		$got{$id}++;
		my $body_id = eval { $json->decode($r->{body})->{event_id} } // '';
		push @bad_id, $id if $id ne $body_id;
		push @bad_body, $id if !$event{$id} || $r->{body} ne $event{$id}{body};
		push @bad_headers, $id
		  if $r->{method} ne 'POST' || ($h->{'content-type'} // '') ne 'application/json';
		if ($kind eq 'webhook')
		{
			my $ts = $h->{'webhook-timestamp'} // '';
			push @bad_headers, $id unless $ts =~ /^\d+$/ && abs($ts - time) < 300;
			if ($name eq 'v1a')
			{
				push @bad_sig, $id
				  if $have_openssl && !v1a_valid($id, $ts, $r->{body}, $h->{'webhook-signature'});
			}
			else
			{
				push @bad_sig, $id unless v1_valid($whsec, $id, $ts, $r->{body}, $h->{'webhook-signature'});
			}
		}
		else
		{
			push @bad_headers, $id if exists $h->{'webhook-signature'};
		}
		push @{ $order{ $event{$id}{entity} // '?' } }, $event{$id}{version} // 0 if $event{$id};
	}
	is(scalar(@reqs), $expected{$name}, "$name: $expected{$name} requests");
	is_deeply([ sort keys %got ], [ sort keys %want ],
		"$name: exactly the events its filter matches arrived");
	is(scalar(grep { $_ > 1 } values %got), 0, "$name: each of them once");
	is_deeply(\@bad_id, [], "$name: the $id_header header is the body's event_id");
	is_deeply(\@bad_body, [], "$name: each body is ves.export_event of its event, canonical JSON byte for byte");
	is_deeply(\@bad_headers, [], "$name: POST, application/json and the headers of its kind");
	if ($kind eq 'webhook' && ($name ne 'v1a' || $have_openssl))
	{
		is_deeply(\@bad_sig, [], "$name: every webhook-signature verifies ("
			  . ($name eq 'v1a' ? 'v1a Ed25519, openssl' : 'v1 HMAC-SHA256, Digest::SHA') . ')');
	}
	# Together with the set check above, strictly increasing versions per
	# entity mean each entity's matching events arrived in version order.
	my @out_of_order = grep {
		my @v = @{ $order{$_} };
		grep { $v[$_] <= $v[ $_ - 1 ] } 1 .. $#v
	} sort keys %order;
	is_deeply(\@out_of_order, [], "$name: per entity, requests arrive in increasing entity_version order");
}

SKIP:
{
	skip 'openssl CLI missing or without Ed25519: v1a signatures not checked', 2 unless $have_openssl;
	my ($r) = $sink->requests('/v1a');
	like($r->{headers}{'webhook-signature'}, qr/^v1a,[A-Za-z0-9+\/]+=*$/, 'a whsk_ destination signs with v1a');
	ok(!v1a_valid($r->{headers}{'webhook-id'}, $r->{headers}{'webhook-timestamp'}, "$r->{body} ",
			$r->{headers}{'webhook-signature'}),
		'the openssl check refuses a v1a signature for a changed body');
}

like(($sink->requests('/plain'))[0]{headers}{'idempotency-key'} // '', qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
	'http destinations carry an Idempotency-Key, the event id');

# get_sync_status shows the work done.
my %status = map { my @f = split /\|/; $f[0] => \@f } split /\n/,
  sql(q{SELECT destination, pending, syncing, synced, failed, dead, breaker, last_success_at IS NOT NULL, paused
        FROM ves.get_sync_status()});
for my $name (sort keys %dest)
{
	is_deeply($status{$name}, [ $name, 0, 0, $expected{$name}, 0, 0, 'closed', 't', 'f' ],
		"get_sync_status: $name has $expected{$name} synced, nothing open, breaker closed");
}

is(sql(q{SELECT delivered || '|' || failed FROM ves.worker_status WHERE database = 'postgres'}), "$total|0",
	'ves.worker_status counts every delivery and no failure');

# A destination's last success is written back at most once a second while
# deliveries go on, and in the end always: within about a second of the last
# delivery of a burst, last_success_at is no older than it.
for my $n (1 .. 20)
{
	sql("SELECT FROM ves.append('$t1', '$store', 'Burst', 'b-$n', 'burst.happened', '{}')");
	usleep(50_000);
}
ok( wait_until(30, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE entity_type = 'Burst' AND status <> 'synced'}) == 0 }),
	'a burst of 20 deliveries over a second is synced');
ok( wait_until(5, sub {
			sql(q{SELECT d.last_success_at >= max(o.synced_at) FROM ves.destinations d
			      JOIN ves.outbox o ON o.destination_id = d.id AND o.entity_type = 'Burst'
			      WHERE d.name = 'wh' GROUP BY d.last_success_at}) eq 't' }),
	'and the destination\'s last_success_at catches up with its last delivery');

# A worker that stops within that second writes the success it held back:
# the first delivery's success is written, the second's, a moment later, is
# not due yet when ves.stop_worker() asks the worker to stop.
my $synced = sub {
	my ($id) = @_;
	wait_until(10, sub { sql("SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
	                           WHERE d.name = 'wh' AND o.entity_id = '$id' AND o.status = 'synced'") == 1 });
};
sql("SELECT FROM ves.append('$t1', '$store', 'Burst', 'stop-1', 'burst.happened', '{}')");
ok($synced->('stop-1'), 'stop: a first delivery is synced');
sql("SELECT FROM ves.append('$t1', '$store', 'Burst', 'stop-2', 'burst.happened', '{}')");
ok($synced->('stop-2'), 'stop: a second one is synced');
is(sql('SELECT ves.stop_worker()'), 't', 'stop: the worker stops at once');
is( sql(q{SELECT d.last_success_at >= o.synced_at FROM ves.destinations d
          JOIN ves.outbox o ON o.destination_id = d.id AND o.entity_id = 'stop-2' WHERE d.name = 'wh'}),
	't', 'stop: last_success_at is no older than the last delivery before the stop');
is(sql('SELECT ves.start_worker()'), 't', 'the worker is started again');

# --- changing and dropping destinations ------------------------------------------

sql("SELECT ves.alter_destination('combo', '{}', '" . $sink->url('/moved') . "')");
sql("SELECT ves.drop_destination('orders')");
my ($moved) = split /\n/, sql("SELECT event_id FROM ves.append('$t1', '$store', 'Product', 'p-1', 'product.updated', '{}')");
my ($order) = split /\n/, sql("SELECT event_id FROM ves.append('$t1', '$store', 'Order', 'o-1', 'order.updated', '{}')");
ok($sink->wait_for(1, '/moved', 10), 'alter_destination: a new url takes effect for the next event');
is(($sink->requests('/moved'))[0]{headers}{'idempotency-key'}, $moved, 'alter_destination: it is the event appended after');
ok( wait_until(10, sub { 2 == grep { my $id = $_->{headers}{'webhook-id'}; $id eq $moved || $id eq $order } $sink->requests('/wh') }),
	'both events reach the unchanged destinations');
is(scalar($sink->requests('/combo')), $expected{combo}, 'alter_destination: nothing more at the old url');
is(scalar($sink->requests('/orders')), $expected{orders}, 'drop_destination: nothing more to a dropped destination');

# --- a commit wakes an idle worker ---------------------------------------------

# With a one-minute safety poll the worker only wakes early if the commit
# wakes it.
sql(q{SELECT ves.set_sync_settings('{"safety_poll_ms": 60000}')});
sleep 2;
for my $i (1 .. 3)
{
	my $before = scalar $sink->requests('/plain');
	my $t0 = time;
	my $id = sql("SELECT event_id FROM ves.append('$t1', '$store', 'Order', 'wake-$i', 'order.created', '{}')");
	ok($sink->wait_for($before + 1, '/plain', 10), "wake $i: the event appended to an idle worker arrives");
	my ($r) = grep { ($_->{headers}{'idempotency-key'} // '') eq $id } $sink->requests('/plain');
	my $latency = $r ? $r->{time} - $t0 : 99;
	cmp_ok($latency, '<', 1.0, sprintf('wake %d: it arrives %.0f ms after the append started (< 1 s)', $i, $latency * 1000));
	sleep 1;
}

# --- purging synced rows ------------------------------------------------------------

# The worker's housekeeping (every 10 s while it runs) deletes synced rows
# older than synced_retention, in batches of purge_batch. A backlog larger
# than one batch must not take one housekeeping round per batch: at the
# default 5,000 rows per 10 s round, any sustained rate above 500 deliveries a
# second would grow the outbox without bound.
# The backlog is counted before the settings change: the worker may purge it
# all within milliseconds of being told.
my $backlog = sql(q{SELECT count(*) FROM ves.outbox});
cmp_ok($backlog, '>', 100, "a backlog of $backlog synced rows, more than one batch");
sql(q{SELECT ves.set_sync_settings('{"safety_poll_ms": 1000, "synced_retention": "1 second", "purge_batch": 100}')});
# On failure: what is left, and what the worker logged about its rounds.
my $why_not_purged = sub {
	diag(sql(q{SELECT status, count(*), min(updated_at), max(updated_at), now() FROM ves.outbox GROUP BY status}));
	diag(join "\n", grep { /pg_ves|failed/ && !/statement:/ } split /\n/, slurp_file($node->logfile));
};
ok(wait_until(15, sub { sql(q{SELECT count(*) FROM ves.outbox}) < $backlog }),
	'the worker purges synced rows once they are older than synced_retention')
  or $why_not_purged->();
ok( wait_until(25, sub { sql(q{SELECT count(*) FROM ves.outbox}) == 0 }),
	"it purges the whole backlog of $backlog rows in batches of 100, not one batch per 10 s round")
  or $why_not_purged->();

$node->stop;
my @crashes = grep { /terminated by signal/ } split /\n/, slurp_file($node->logfile);
is_deeply(\@crashes, [], 'no process terminated by a signal');

done_testing();
