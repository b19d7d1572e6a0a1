# Long verifications report progress the Postgres way (visible from another
# session in ves.progress) and stop on cancel, leaving no progress row behind.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('verify_progress');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# 40,000 signed events in batches of 1,000.
sql(q{
  SELECT count(*) FROM generate_series(1, 40) b,
    LATERAL ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
      'tenant_id', '00000000-0000-0000-0000-0000000000c1', 'store_id', '00000000-0000-0000-0000-0000000000d1',
      'entity_type', 'Sku', 'entity_id', 'sku-' || (b * 1000 + g), 'event_type', 'stock.set',
      'payload', jsonb_build_object('qty', g))) FROM generate_series(1, 1000) g))
});
is(sql('SELECT count(*) FROM ves.events'), 40000, '40,000 events appended');
is(sql('SELECT count(*) FROM ves.verify_events()'), 0, 'every stored event verifies');

# Verification in another session, slowed down so it is surely caught
# mid-way: a per-row sleep via a tenant filter would change the plan, so
# instead verify the same range repeatedly in one statement.
my $verifier = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $verifier->query_safe('SELECT pg_backend_pid()');
$verifier->query_until(qr/started/, q{
  \echo started
  SELECT count(*) FROM generate_series(1, 50) g, LATERAL ves.verify_events(from_position => 1);
});

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM ves.progress WHERE pid = $pid AND command = 'verify_events' AND done > 0"),
	'ves.progress shows the running verification from another session');
my ($done, $total) = split /\|/,
  sql("SELECT done, total FROM ves.progress WHERE pid = $pid");
ok($done > 0 && $total == 40000, "progress counts positions scanned ($done of $total)");

is(sql("SELECT pg_cancel_backend($pid)"), 't', 'cancel requested');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM ves.progress WHERE pid = $pid"),
	'the cancelled verification leaves no progress row');
my $after = $verifier->query('SELECT 1');
is($after, '1', 'the cancelled session goes on serving');
like($verifier->{stderr}, qr/canceling statement due to user request/, 'the verification was cancelled');
$verifier->quit;

# A tampered event is named, by position and reason.
sql(q{
  BEGIN;
  SELECT ves.begin_maintenance('tap: tamper one event');
  UPDATE ves.events SET payload = '{"qty": -1}' WHERE position = 12345;
  COMMIT;
});
is(sql('SELECT event_position || \'|\' || reason FROM ves.verify_events()'),
	'12345|payload_hash_mismatch', 'verification names the tampered event');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no backend crashed');
$node->stop;
done_testing();
