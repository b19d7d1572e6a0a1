# Destination credentials at rest and on the wire, and the address reject
# list at connect time.
#
# A webhook secret and a secret header are sealed under the server key: a
# pg_dump of the database and the server log hold neither, yet the worker
# opens them and sends a webhook-signature that verifies and the header's
# value. With ves.destination_address_reject = '127.0.0.0/8', destinations at
# 127.0.0.1 and at localhost (the check is on the resolved address) fail
# with an error naming the address and the setting, and the sink receives
# nothing; back at the default they deliver.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(decode_base64 encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

sub v1_valid
{
	my ($secret, $id, $ts, $body, $header) = @_;
	(my $key = $secret) =~ s/^whsec_//;
	my $want = encode_base64(hmac_sha256("$id.$ts.$body", decode_base64($key)), '');
	return scalar grep { $_ eq "v1,$want" } split / /, $header // '';
}

my $whsec = 'whsec_' . encode_base64('pg_ves tap secret key, 32 bytes', '');
my $whsec_key = substr($whsec, 6);
my $token = 'Bearer tap-s3cr3t-token-4711';
my $api_key = 'api-key-0815-never-stored';

my $node = new_node('destination_secrets');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'the sync worker runs');
sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')});

my $t = '00000000-0000-0000-0000-0000000017a1';
my $store = '00000000-0000-0000-0000-0000000017b1';

# Statement logging would record the call's arguments: the session that
# sets credentials turns it off (the test cluster logs every statement).
sub secret_sql { return sql("SET log_statement = 'none';\n$_[0]"); }
secret_sql("SELECT ves.create_destination('signed', 'webhook', '" . $sink->url('/signed') . "', '"
	  . qq({"secret": "$whsec", "headers": {"X-Plain": "plain-value",)
	  . qq( "Authorization": {"value": "$token", "secret": true}}}) . "')");
secret_sql("SELECT ves.create_destination('keyed', 'http', '" . $sink->url('/keyed') . "', '"
	  . qq({"headers": {"X-Api-Key": {"value": "$api_key", "secret": true}}}) . "')");

is(sql(q{SELECT headers->'Authorization'->>'value' FROM ves.destinations WHERE name = 'signed'}),
	'[redacted]', 'ves.destinations shows the secret header redacted');

my $id = sql("SELECT event_id FROM ves.append('$t', '$store', 'Order', 'o-1', 'order.created', '{\"n\": 1}')");
ok($sink->wait_for(1, '/signed', 20), 'the webhook destination receives the event');
ok($sink->wait_for(1, '/keyed', 20), 'the http destination receives the event');
my ($r) = $sink->requests('/signed');
my $h = $r->{headers};
is($h->{'webhook-id'}, $id, 'webhook-id is the event id');
ok(v1_valid($whsec, $id, $h->{'webhook-timestamp'}, $r->{body}, $h->{'webhook-signature'}),
	'the webhook-signature verifies with the secret that is stored sealed');
is($h->{authorization}, $token, 'the secret header arrives with its value');
is($h->{'x-plain'}, 'plain-value', 'the plain header arrives');
my ($k) = $sink->requests('/keyed');
is($k->{headers}{'x-api-key'}, $api_key, 'the http destination sends its secret header');
ok(wait_until(10, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'both rows are synced');

# --- at rest --------------------------------------------------------------------

my ($dump, $dump_err) = run_command([ 'pg_dump', '--no-sync', '-d', $node->connstr('postgres') ]);
like($dump, qr/COPY ves\.destination_secrets/, 'pg_dump writes ves.destination_secrets');
my %needles = (secret => $whsec_key, token => 'tap-s3cr3t-token-4711', 'api key' => $api_key);
for my $what (sort keys %needles)
{
	my $plain = $needles{$what};
	my $hex = unpack('H*', $plain);
	ok(index($dump, $plain) < 0 && index($dump, $hex) < 0, "the dump holds the $what neither as text nor as hex");
}
my $sealed = sql(q{SELECT encode(secret_box, 'hex') FROM ves.destination_secrets s
                   JOIN ves.destinations d ON d.id = s.destination_id WHERE d.name = 'signed'});
ok(length($sealed) > 0 && index($dump, $sealed) >= 0, 'the dump holds the sealed box instead');

# A restored copy on the same server (same server key) still sends.
sql('CREATE DATABASE restored');
my $dump_file = PostgreSQL::Test::Utils::tempdir() . '/dump.sql';
open my $fh, '>', $dump_file or die $!;
print $fh $dump;
close $fh;
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump_file ],
	'the dump restores');
is($node->safe_psql('restored', q{SELECT count(*) FROM ves.destination_secrets WHERE secret_box IS NOT NULL}),
	1, 'the restored database holds the sealed secret');

# --- the address reject list --------------------------------------------------

$node->append_conf('postgresql.conf', "ves.destination_address_reject = '127.0.0.0/8'\n");
$node->reload;
is(sql('SHOW ves.destination_address_reject'), '127.0.0.0/8', 'the reject list is reloaded');
my $port = $sink->port;
my $opts = '{"max_attempts": 100, "backoff_base_ms": 200, "backoff_cap_ms": 500, "jitter": 0, "breaker_threshold": 0}';
sql("SELECT ves.create_destination('by-ip', 'http', 'http://127.0.0.1:$port/by-ip', '$opts')");
sql("SELECT ves.create_destination('by-name', 'http', 'http://localhost:$port/by-name', '$opts')");
sleep 1;    # the worker reloads its settings
sql("SELECT ves.append('$t', '$store', 'Order', 'o-2', 'order.created', '{\"n\": 2}')");
my $errors = sub {
	sql(q{SELECT string_agg(d.name || ': ' || coalesce(o.last_error, ''), E'\n' ORDER BY d.name)
          FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
          WHERE d.name IN ('by-ip', 'by-name')});
};
ok( wait_until(20, sub { my @hits = $errors->() =~ /refused by ves\.destination_address_reject/g; @hits == 2 }),
	'both destinations fail with the reject list named in last_error') or diag($errors->());
like($errors->(), qr/by-ip: connection to 127\.0\.0\.1 refused by ves\.destination_address_reject \(127\.0\.0\.0\/8\)/,
	'the error names the address and the range');
like($errors->(), qr/by-name: connection to 127\.0\.0\.1 refused by ves\.destination_address_reject/,
	'localhost is refused by its resolved address');
is(sql(q{SELECT string_agg(DISTINCT status, ',') FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
         WHERE d.name IN ('by-ip', 'by-name')}), 'failed', 'the rows are failed, to be retried');
is(scalar($sink->requests('/by-ip')) + scalar($sink->requests('/by-name')), 0, 'the sink received nothing');
like(sql(q{SELECT last_error FROM ves.get_sync_status() WHERE destination = 'by-name'}),
	qr/destination_address_reject/, 'get_sync_status shows the reason');

$node->append_conf('postgresql.conf', "ves.destination_address_reject = '169.254.0.0/16, fe80::/10'\n");
$node->reload;
sleep 1;
sql(q{SELECT ves.retry_events(ARRAY(SELECT o.id FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                                   WHERE d.name IN ('by-ip', 'by-name')))});
ok($sink->wait_for(1, '/by-ip', 20), 'with the default list, 127.0.0.1 delivers');
ok($sink->wait_for(1, '/by-name', 20), 'and so does localhost');

# --- ves.max_timeout_ms bounds the send, whatever timeout_ms says ------------------

sql("SELECT ves.create_destination('patient', 'http', '" . $sink->url('/patient')
	  . "', '{\"timeout_ms\": 30000, \"max_attempts\": 100, \"backoff_base_ms\": 60000, \"jitter\": 0}')");
$node->append_conf('postgresql.conf', "ves.max_timeout_ms = 1000\n");
$node->reload;
sleep 1;
$sink->control(path => '/patient', mode => 'hang', delay_ms => 20000);
my $t0 = time;
sql("SELECT ves.append('$t', '$store', 'Order', 'o-3', 'order.created', '{\"n\": 3}')");
ok( wait_until(15, sub { sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                                 WHERE d.name = 'patient' AND o.status = 'failed'}) == 1 }),
	'a destination with timeout_ms 30000 gives up after ves.max_timeout_ms');
cmp_ok(time - $t0, '<', 10, 'well before its own timeout_ms');
like(sql(q{SELECT last_error FROM ves.get_sync_status() WHERE destination = 'patient'}), qr/timeout|timed out/i,
	'the failure is a timeout');
is(sql(q{SELECT timeout_ms FROM ves.destinations WHERE name = 'patient'}), 30000, 'the stored timeout_ms is unchanged');
$sink->clear('/patient');

# --- nothing in the log ------------------------------------------------------------

$node->stop;
my $log = slurp_file($node->logfile);
for my $what (sort keys %needles)
{
	ok(index($log, $needles{$what}) < 0, "the server log does not hold the $what");
}
my @crashes = grep { /terminated by signal/ } split /\n/, $log;
is_deeply(\@crashes, [], 'no process terminated by a signal');

done_testing();
