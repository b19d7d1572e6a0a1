# Destinations of kind ves_postgres: cluster A pushes its events over libpq
# to cluster B, a pg_ves database acting as the VES sequencer
# (ves.sequence_events). A stores each verified receipt (hash and B's
# signature) in ves.sequencer_receipts; while B is down the rows are
# retried and go through once it is back; a wrong password is permanent
# with a clear error, and no password ever shows in A's outbox, its log or
# its catalog.
use strict;
use warnings;

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

done_testing();
