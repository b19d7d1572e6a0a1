# Destinations of kind ves_postgres: cluster A pushes its events over libpq
# to cluster B, a pg_ves database acting as the VES sequencer
# (ves.sequence_events). A stores each verified receipt (hash and B's
# signature) in ves.sequencer_receipts; while B is down the rows are
# retried and go through once it is back; a wrong password is permanent
# with a clear error, and no password ever shows in A's outbox, its log or
# its catalog. A remote that is slow to answer, or whose host name is slow
# to look up, holds up no other delivery.
use strict;
use warnings;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $a = new_node('a');
my $b = new_node('b');
sub sa { return $a->safe_psql('postgres', $_[0]); }
sub sb { return $b->safe_psql('postgres', $_[0]); }

my $right = 'right-Pass-8613';
my $wrong = 'wrong-Pass-4479';
my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';

# B: a login role that must give its password, allowed to sequence.
sb("CREATE ROLE pusher LOGIN PASSWORD '$right' IN ROLE ves_writer");
my $hba = $b->data_dir . '/pg_hba.conf';
my $rules = slurp_file($hba);
open(my $fh, '>', $hba) or die;
print $fh "local all pusher scram-sha-256\nhost all pusher 127.0.0.1/32 scram-sha-256\n$rules";
close $fh;
$b->reload;

# B knows A's agent key; A knows B's sequencer key.
my ($agent, $key_id, $public) = split /\|/,
  sa("SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$store')");
sb("SELECT ves.register_agent_key('$tenant', '$agent', $key_id, decode('$public', 'hex'))");
my $b_key = sb(q{SELECT encode(public_key, 'hex') FROM ves.sequencer_identity()});

my $host = $b->host;
my $port = $b->port;
my $conninfo = "host=$host port=$port dbname=postgres user=pusher";
my $fast = '"max_attempts": 50, "backoff_base_ms": 100, "backoff_cap_ms": 500, "timeout_ms": 3000';

# Options are checked when written; the url may not carry a password.
my ($ok, $out, $err) = $a->psql('postgres',
	qq{SELECT ves.create_destination('x', 'ves_postgres', 'postgresql://pusher:$right\@b/postgres', '{}')});
like($err, qr/must not carry a password/, 'a password in the url is refused');
unlike($err, qr/\Q$right\E/, 'and the refusal does not quote it');
($ok, $out, $err) = $a->psql('postgres',
	qq{SELECT ves.create_destination('x', 'ves_postgres', 'postgresql://b/postgres', '{"conninfo": "x", "secret": "s"}')});
like($err, qr/takes no "secret"/, 'a secret option is refused');
# A service's hosts come from a file on the server, out of the worker's
# sight: ves.destination_address_reject could not check them.
($ok, $out, $err) = $a->psql('postgres',
	qq{SELECT ves.create_destination('x', 'ves_postgres', 'postgresql://b/postgres',
	   '{"conninfo": "service=internal dbname=postgres password=$right"}')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  VE010: conninfo names a service \(service=internal\), whose hosts ves\.destination_address_reject cannot check/,
	'a conninfo naming a service is refused when written');
like($err, qr/HINT:  Name the remote's host \(and port\) in the conninfo itself\./, 'with a hint');
unlike($err, qr/\Q$right\E/, 'and the refusal does not quote the password');
# Nor may a destination make the worker read the server's files: a password
# file, a client certificate or its key.
for my $file (qw(passfile sslcert sslkey))
{
	($ok, $out, $err) = $a->psql('postgres',
		qq{SELECT ves.create_destination('x', 'ves_postgres', 'postgresql://b/postgres',
		   '{"conninfo": "host=b dbname=postgres $file=/var/lib/postgresql/.pgpass"}')},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  VE010: conninfo sets $file: a destination does not make the sync worker use the server's files/,
		"a conninfo setting $file is refused when written");
}
like($err, qr/HINT:  Put the remote role's password in the conninfo itself \(it is sealed\); a client certificate cannot be used\./,
	'with a hint');

sa(qq{SELECT ves.create_destination('to_b', 'ves_postgres', 'postgresql://b/postgres',
        '{"conninfo": "$conninfo password=$right", "sequencer_public_key": "$b_key",
          "entity_types": ["Order"], $fast}')});
sa(qq{SELECT ves.create_destination('to_b_wrong', 'ves_postgres', 'postgresql://b/postgres',
        '{"conninfo": "$conninfo password=$wrong", "entity_types": ["Bad"], $fast}')});
is(sa(q{SELECT count(*) FROM ves.destinations WHERE kind_options::text LIKE '%Pass%' OR url LIKE '%Pass%'}), 0,
	'the conninfo is not stored in the destinations\' options');
# The statements above carry the passwords into A's log (statement
# logging); what pg_ves itself logs from here on must not.
my $log_offset = -s $a->logfile;
ok(enable_worker($a), 'A runs a sync worker');

my $n = 5;
sa(qq{SELECT ves.append('$tenant', '$store', 'Order', 'o-' || (g % 2), 'order.noted', jsonb_build_object('g', g))
      FROM generate_series(1, $n) g});
sub synced { return sa(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                          WHERE d.name = 'to_b' AND o.status = 'synced'}); }
ok(wait_until(60, sub { synced() == $n }), "A's events are pushed to B")
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox});
is( sa(q{SELECT string_agg(r.sequence_number || ':' || r.signature_verified, ',' ORDER BY e.position)
         FROM ves.sequencer_receipts r JOIN ves.events e ON e.event_id = r.event_id}),
	join(',', map { "$_:true" } 1 .. $n), 'A stores receipts 1..n, each signature verified with B\'s key');
is( sa(q{SELECT count(*) FROM ves.sequencer_receipts r JOIN ves.events e ON e.event_id = r.event_id
         WHERE r.receipt_hash = ves.receipt_hash(e.tenant_id, e.store_id, e.event_id, r.sequence_number,
                                                 ves.signing_hash(e.event_id))
           AND r.receipt->>'receiptHash' = encode(r.receipt_hash, 'hex')}),
	$n, 'every receipt hash is the VES v1 receipt hash of its event');
my $a_receipts = sa(q{SELECT string_agg(event_id || ':' || encode(receipt_hash, 'hex'), ',' ORDER BY sequence_number)
                      FROM ves.sequencer_receipts});
is( sb(qq{SELECT string_agg(event_id || ':' || encode(receipt_hash, 'hex'), ',' ORDER BY sequence_number)
          FROM ves.sequencer_events WHERE tenant_id = '$tenant' AND store_id = '$store'}),
	$a_receipts, 'B sequenced exactly these events with these receipts');
like(sb(q{SELECT string_agg(DISTINCT application_name, ',') FROM pg_stat_activity WHERE usename = 'pusher'}),
	qr/^pg_ves sync$/, 'A\'s worker is connected to B as "pg_ves sync"');

# B down: the pushes are retried, and go through once B is back.
$b->stop;
sa(qq{SELECT ves.append('$tenant', '$store', 'Order', 'o-9', 'order.noted', jsonb_build_object('g', g))
      FROM generate_series(1, 2) g});
ok( wait_until(60, sub { sa(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                              WHERE d.name = 'to_b' AND o.attempts >= 2 AND o.status = 'failed'}) >= 1 }),
	'while B is down the rows are retried (in entity order: one at a time)')
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox});
like(sa(q{SELECT min(last_error) FROM ves.outbox WHERE status = 'failed'}), qr/^remote pg_ves: connection to server .* failed/,
	'with the connection error as the reason');
$b->start;
ok(wait_until(60, sub { synced() == $n + 2 }), 'after B is back they are sequenced')
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox});
is(sa(q{SELECT max(sequence_number) FROM ves.sequencer_receipts}), $n + 2, 'as numbers n+1, n+2');

# A wrong password: permanent, with the remote's words and no password.
my ($bad) = sa(qq{SELECT (ves.append('$tenant', '$store', 'Bad', 'b-1', 'bad.noted', '{}')).event_id});
ok( wait_until(60, sub { sa(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                              WHERE d.name = 'to_b_wrong' AND o.status IN ('dead', 'failed')}) == 1 }),
	'a wrong password ends the row')
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox});
my $row = sa(q{SELECT o.status || '|' || o.attempts || '|' || o.last_error FROM ves.outbox o
               JOIN ves.destinations d ON d.id = o.destination_id WHERE d.name = 'to_b_wrong'});
like($row, qr/^(dead|failed)\|1\|the remote pg_ves refused the push: .*password authentication failed for user "pusher"/,
	'permanent at the first attempt, saying authentication failed');
my $everything = join("\n",
	sa(q{SELECT coalesce(string_agg(o::text, E'\n'), '') FROM ves.outbox o}),
	sa(q{SELECT coalesce(string_agg(ves.get_outbox_event(o.id)::text, E'\n'), '') FROM ves.outbox o}),
	sa(q{SELECT string_agg(d::text, E'\n') FROM ves.destinations d}),
	sa(q{SELECT coalesce(string_agg(coalesce(query, '') || application_name, E'\n'), '') FROM pg_stat_activity}),
	substr(slurp_file($a->logfile), $log_offset));
unlike($everything, qr/\Q$wrong\E|\Q$right\E/,
	'no password in A\'s outbox, get_outbox_event, destinations, pg_stat_activity or log');
like(slurp_file($b->logfile), qr/password authentication failed for user "pusher"/,
	'B logged the refused login');

# --- a slow remote holds up no delivery ----------------------------------------------
# Calls to B run on the worker's engine beside its HTTP transfers. While a
# session on B holds the table that ves.sequence_events writes and
# ves.sequenced_events reads, every push and every pull from B (polled
# each 100 ms) waits for B's statement_timeout (3 s). A worker that waited
# for them would hold every other delivery up for most of that time.
my $other = '44444444-4444-4444-8444-444444444444';
my $sink = start_sink();
sa(q{SELECT ves.create_destination('hook', 'webhook', '} . $sink->url('/hook')
	  . qq{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tenant_id": "$other"}')});
sa(qq{SELECT ves.alter_destination('to_b', '{"tenant_id": "$tenant"}')});
# Its pulls connect through a first address that refuses them: libpq then
# opens another socket for the next one.
my $refusing = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
  or die "cannot listen: $!";
my $refused_port = $refusing->sockport;
close $refusing;
sa(qq{SELECT ves.create_destination('from_b', 'ves_postgres', 'postgresql://b/postgres',
        '{"conninfo": "host=127.0.0.1,$host port=$refused_port,$port dbname=postgres user=pusher password=$right",
          "sequencer_public_key": "$b_key", "pull": true,
          "tenant_id": "$tenant", "store_id": "$store", "entity_types": ["Nothing"],
          "pull_interval_ms": 100, $fast}')});
ok(wait_until(30, sub { sa(q{SELECT count(*) FROM ves.pull_status WHERE last_pull_at IS NOT NULL}) == 1 }),
	"A pulls B's stream");
my $holder = $b->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE ves.sequencer_events IN ACCESS EXCLUSIVE MODE');
sa(qq{SELECT ves.append('$tenant', '$store', 'Order', 'o-slow', 'order.noted', '{}')});
sub waiting_on_b
{
	return sb(q{SELECT count(*) FROM pg_stat_activity
	            WHERE application_name = 'pg_ves sync' AND wait_event_type = 'Lock'});
}
ok(wait_until(10, sub { waiting_on_b() >= 2 }), 'a push and a pull wait on B')
  or diag sb(q{SELECT string_agg(coalesce(wait_event_type, '-') || ' ' || query, E'\n') FROM pg_stat_activity
               WHERE application_name = 'pg_ves sync'});
my $pushed_before = synced();
check_delivery_waits([ delivery_waits(\&sa, $sink, $other, $store, 30, 'slow-remote') ],
	30, 2, 0.8, 'a call to a remote pg_ves');
cmp_ok(waiting_on_b(), '>=', 1, 'calls to B were still waiting at the end');
is(synced(), $pushed_before, 'and nothing was pushed to B meanwhile');
# ves.pull_events in a session waits for B the same way, and can be cancelled.
my $t0 = time();
my ($rc, $stdout, $stderr) = $a->psql('postgres', q{SET statement_timeout = '300ms'; SELECT ves.pull_events('from_b')});
my $took = time() - $t0;
like($stderr, qr/canceling statement due to statement timeout/, 'a session pull waiting on B can be cancelled');
cmp_ok($took, '<', 2.5, sprintf('at once (%.2f s; B would answer after 3 s)', $took));
my $held_since = sa(q{SELECT now()});
$holder->query_safe('COMMIT');
$holder->quit;
ok(wait_until(60, sub { synced() == $pushed_before + 1 }), 'once B lets go, the held push goes through')
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox WHERE status <> 'synced'});
ok(wait_until(30, sub { sa(qq{SELECT last_pull_at > '$held_since' AND last_error IS NULL FROM ves.pull_status}) eq 't' }),
	'and the pulls read B again');
is(sa(q{SELECT (ves.pull_events('from_b')).head}),
	sb(qq{SELECT max(sequence_number) FROM ves.sequencer_events WHERE tenant_id = '$tenant' AND store_id = '$store'}),
	'a session pull reads B\'s head');
$sink->stop;

# A server that takes the connection and never answers: given up after
# the destination's timeout (at least 2 s), retried like any failed
# connection.
my $silent = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
  or die "cannot listen: $!";
my $silent_port = $silent->sockport;
sa(qq{SELECT ves.create_destination('to_silent', 'ves_postgres', 'postgresql://silent/postgres',
        '{"conninfo": "host=127.0.0.1 port=$silent_port dbname=postgres user=nobody password=$right",
          "entity_types": ["Silent"], "max_attempts": 50, "backoff_base_ms": 100, "backoff_cap_ms": 200,
          "timeout_ms": 1000}')});
sa(qq{SELECT ves.append('$tenant', '$store', 'Silent', 's-1', 'silent.noted', '{}')});
ok( wait_until(30, sub { sa(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                              WHERE d.name = 'to_silent' AND o.attempts >= 2 AND o.status = 'failed'}) == 1 }),
	'a silent server: the push is given up and retried')
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox});
like(sa(q{SELECT o.last_error FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
          WHERE d.name = 'to_silent'}), qr/^remote pg_ves: no connection within 2000 ms$/,
	'saying no connection came up in time');
close $silent;

# --- a host name is looked up beside the deliveries ----------------------------------
# libpq looks a host name up on the thread that connects, which would hold
# the worker's every delivery up while a DNS server is slow; the worker
# looks the name up on a thread of its own and gives libpq the addresses.
# A shim preloaded into A (test/shim/slow_lookup.c) makes slow.pgves.test
# take 2 s to resolve (to 127.0.0.1) and missing.pgves.test fail.
my $repo = $ENV{PGVES_REPO} // die "PGVES_REPO must name the repository copy\n";
my $shim = PostgreSQL::Test::Utils::tempdir() . '/slow_lookup.so';
system("cc -shared -fPIC -o $shim $repo/test/shim/slow_lookup.c -ldl") == 0
  or die "cannot build the lookup shim";
$b->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'");
$b->restart;
{
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{PGVES_SLOW_LOOKUP_MS} = 2000;
	$a->restart;
}
my $third = '55555555-5555-4555-8555-555555555555';
my $sink2 = start_sink();
sa(q{SELECT ves.create_destination('hook2', 'webhook', '} . $sink2->url('/hook')
	  . qq{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tenant_id": "$third"}')});
sa(qq{SELECT ves.create_destination('to_slow', 'ves_postgres', 'postgresql://slow/postgres',
        '{"conninfo": "host=slow.pgves.test port=$port dbname=postgres user=pusher password=$right",
          "sequencer_public_key": "$b_key", "tenant_id": "$tenant", "entity_types": ["Slow"], $fast}')});
sa(qq{SELECT ves.create_destination('to_missing', 'ves_postgres', 'postgresql://missing/postgres',
        '{"conninfo": "host=missing.pgves.test port=$port dbname=postgres user=pusher password=$right",
          "tenant_id": "$tenant", "entity_types": ["Missing"], $fast}')});
sub row_of
{
	return sa(qq{SELECT o.status || '|' || o.attempts || '|' || coalesce(o.last_error, '') FROM ves.outbox o
	             JOIN ves.destinations d ON d.id = o.destination_id WHERE d.name = '$_[0]'});
}
# The webhook works before the lookup starts.
append_orders(\&sa, $third, $store, 1, 'before-lookup');
ok($sink2->wait_for(1, '/hook', 30), 'A delivers to the webhook after its restart');
# A webhook at the slow name too: libcurl looks names up on a thread of its
# own (its threaded resolver), which this checks as well.
my $fourth = '66666666-6666-4666-8666-666666666666';
sa(q{SELECT ves.create_destination('hook_slow', 'webhook', 'http://slow.pgves.test:} . $sink2->port
	  . qq{/slow', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tenant_id": "$fourth"}')});
append_orders(\&sa, $fourth, $store, 1, 'slow-hook');
sa(qq{SELECT ves.append('$tenant', '$store', 'Slow', 's-1', 'slow.noted', '{}')});
check_delivery_waits([ delivery_waits(\&sa, $sink2, $third, $store, 25, 'slow-lookup') ],
	25, 2, 0.8, 'host name lookups of 2 s');
ok($sink2->wait_for(1, '/slow', 30), 'the webhook at slow.pgves.test is delivered once the name resolves');
ok(wait_until(30, sub { row_of('to_slow') =~ /^synced\|1\|/ }),
	'the event for slow.pgves.test is pushed once the name resolves, at its first attempt')
  or diag row_of('to_slow');
is(sb(q{SELECT string_agg(DISTINCT host(client_addr), ',') FROM pg_stat_activity
        WHERE usename = 'pusher' AND client_addr IS NOT NULL}),
	'127.0.0.1', 'to the address the lookup found, over TCP');
sa(qq{SELECT ves.append('$tenant', '$store', 'Missing', 'm-1', 'missing.noted', '{}')});
ok(wait_until(30, sub { row_of('to_missing') =~ /^failed\|[1-9]/ }), 'a name that does not resolve: the push is retried')
  or diag row_of('to_missing');
like(row_of('to_missing'),
	qr/^failed\|\d+\|remote pg_ves: could not translate host name "missing\.pgves\.test" to address: Name or service not known$/,
	'saying which name did not resolve, as libpq would');

# ves.destination_address_reject (default: the link-local ranges of cloud
# metadata services) holds for ves_postgres connections as for HTTP: checked
# on every address, given or looked up, before libpq connects.
sa(qq{SELECT ves.create_destination('to_metadata', 'ves_postgres', 'postgresql://metadata/postgres',
        '{"conninfo": "host=linklocal.pgves.test port=$port dbname=postgres user=pusher password=$right",
          "tenant_id": "$tenant", "entity_types": ["Meta1"], $fast}')});
sa(qq{SELECT ves.create_destination('to_metadata2', 'ves_postgres', 'postgresql://metadata/postgres',
        '{"conninfo": "host=169.254.10.1,missing.pgves.test port=$port dbname=postgres user=pusher password=$right",
          "tenant_id": "$tenant", "entity_types": ["Meta2"], $fast}')});
sa(qq{SELECT ves.create_destination('to_metadata3', 'ves_postgres', 'postgresql://metadata/postgres',
        '{"conninfo": "host=b.pgves.test hostaddr=169.254.20.1 port=$port dbname=postgres user=pusher password=$right",
          "tenant_id": "$tenant", "entity_types": ["Meta3"], $fast}')});
sa(qq{SELECT ves.append('$tenant', '$store', 'Meta' || g, 'm-1', 'meta.noted', '{}') FROM generate_series(1, 3) g});
ok( wait_until(30, sub { sa(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                              WHERE d.name LIKE 'to_metadata%' AND o.status = 'failed'}) == 3 }),
	'pushes to refused addresses fail and are retried')
  or diag sa(q{SELECT status, attempts, last_error FROM ves.outbox});
like(row_of('to_metadata'),
	qr/^failed\|\d+\|remote pg_ves: connection to 169\.254\.169\.254 refused by ves\.destination_address_reject \(169\.254\.0\.0\/16\)$/,
	'a name that resolves into a refused range is refused');
like(row_of('to_metadata2'),
	qr/^failed\|\d+\|remote pg_ves: connection to 169\.254\.10\.1 refused by ves\.destination_address_reject \(169\.254\.0\.0\/16\)$/,
	'so is a numeric host, in a list whose other host does not resolve');
like(row_of('to_metadata3'),
	qr/^failed\|\d+\|remote pg_ves: connection to 169\.254\.20\.1 refused by ves\.destination_address_reject \(169\.254\.0\.0\/16\)$/,
	'and a hostaddr');

# Hosts and addresses that libpq takes from the server's environment when
# the conninfo does not set them (PGHOST, PGHOSTADDR, a PGSERVICE entry) are
# planned, looked up and checked by the worker like the conninfo's own.
# (The test framework sets PGHOST for the server it starts, so PGHOSTADDR
# stands for the environment here.)
{
	local $ENV{PGHOSTADDR} = '169.254.50.1';
	$a->restart;
}
# A destination whose pushes must be refused at `address`: they fail, are
# retried, and say so.
sub refused_push
{
	my ($name, $conninfo, $type, $address, $what) = @_;
	sa(qq{SELECT ves.create_destination('$name', 'ves_postgres', 'postgresql://metadata/postgres',
	        '{"conninfo": "$conninfo port=$port dbname=postgres user=pusher password=$right",
	          "tenant_id": "$tenant", "entity_types": ["$type"], $fast}')});
	sa(qq{SELECT ves.append('$tenant', '$store', '$type', 'e-1', 'env.noted', '{}')});
	ok(wait_until(30, sub { row_of($name) =~ /^failed\|[1-9]/ }), "$what: the push fails and is retried")
	  or diag row_of($name);
	like(row_of($name),
		qr/^failed\|\d+\|remote pg_ves: connection to \Q$address\E refused by ves\.destination_address_reject \(169\.254\.0\.0\/16\)$/,
		"$what: $address is refused");
}
refused_push('to_env_host', '', 'Env1', '169.254.50.1', 'a conninfo without a host, PGHOSTADDR set');
my $services = PostgreSQL::Test::Utils::tempdir() . '/pg_service.conf';
open(my $sf, '>', $services) or die "cannot write $services: $!";
print $sf "[elsewhere]\nhostaddr=169.254.40.1\n";
close $sf;
{
	local $ENV{PGSERVICEFILE} = $services;
	local $ENV{PGSERVICE} = 'elsewhere';
	$a->restart;
}
# This conninfo alone reaches B; libpq would take the service's hostaddr
# for it, and so connect elsewhere.
refused_push('to_env_service', 'host=127.0.0.1', 'Env2', '169.254.40.1', 'hostaddr from the PGSERVICE entry');

# A password file in the server's environment is not read either: this
# conninfo has no password, B asks for one, and the file holds it.
my $passfile = PostgreSQL::Test::Utils::tempdir() . '/pgpass';
open(my $pf, '>', $passfile) or die "cannot write $passfile: $!";
print $pf "*:*:*:pusher:$right\n";
close $pf;
chmod 0600, $passfile;
{
	local $ENV{PGPASSFILE} = $passfile;
	$a->restart;
}
sa(qq{SELECT ves.create_destination('to_no_password', 'ves_postgres', 'postgresql://b/postgres',
        '{"conninfo": "host=127.0.0.1 port=$port dbname=postgres user=pusher",
          "tenant_id": "$tenant", "entity_types": ["Env3"], $fast}')});
sa(qq{SELECT ves.append('$tenant', '$store', 'Env3', 'e-1', 'env.noted', '{}')});
ok(wait_until(30, sub { row_of('to_no_password') =~ /^failed\|[1-9]/ }),
	'a push whose password only the server\'s PGPASSFILE holds fails')
  or diag row_of('to_no_password');
like(row_of('to_no_password'), qr/^failed\|\d+\|remote pg_ves: .*no password supplied$/,
	'B asked for a password and none was sent');

# The worker runs as the server's operating-system account, which A's own
# socket trusts (as a default peer rule in pg_hba.conf would): a conninfo
# naming it would log in as A's superuser without a password. Refused at
# once, whatever the conninfo's password, unless the remote asks for it.
my $self_conninfo = sprintf('host=%s port=%d dbname=postgres user=%s password=unasked', $a->host, $a->port,
	scalar getpwuid($<));
sa(qq{SELECT ves.create_destination('to_self', 'ves_postgres', 'postgresql://a/postgres',
        '{"conninfo": "$self_conninfo", "tenant_id": "$tenant", "entity_types": ["Self"], $fast}')});
sa(qq{SELECT ves.append('$tenant', '$store', 'Self', 's-1', 'self.noted', '{}')});
ok(wait_until(30, sub { row_of('to_self') =~ /^(dead|failed)\|1\|/ }), 'a push to a remote that trusts the server\'s account ends the row')
  or diag row_of('to_self');
like(row_of('to_self'),
	qr/^(dead|failed)\|1\|the remote pg_ves refused the push: the remote did not ask for the conninfo's password \(ves\.remote_password_required is on\) \(permanent\)$/,
	'at its first attempt, before any statement, saying why');
$sink2->stop;

done_testing();
