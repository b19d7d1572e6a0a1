# The worker keeps its claim plan for its whole life. A plan made while the
# outbox was empty (and analysed as such) must still do bounded work once
# 50,000 rows are queued: each claim reads about as many outbox entries as it
# claims, rather than every open row for every candidate (the per-entity
# "no earlier open row" check once scanned the open-rows index and discarded
# 12.8 million rows per claim of 256). The worker's own claims are observed
# through auto_explain (EXPLAIN ANALYZE of every statement it runs).
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('claim_stats');
# No autoanalyze: the statistics stay those of the empty table, as they do
# when rows arrive faster than autovacuum reacts.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_ves,auto_explain'\nautovacuum = off\n");
$node->restart;
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'the sync worker runs');

sql('ANALYZE ves.outbox');
is(sql(q{SELECT reltuples FROM pg_class WHERE oid = 'ves.outbox'::regclass}), 0, 'ves.outbox analysed while empty');
sql("SELECT ves.create_destination('stats', 'http', '" . $sink->url('/stats') . q{', '{"concurrency": 32}')});
sql(q{SELECT ves.append('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1',
                        'Sku', 'first', 'stock.set', '{"qty": 1}')});
ok($sink->wait_for(1, '/stats', 30), 'the worker has claimed from the empty outbox (its claim plan is made)');

sql(q{SELECT ves.pause_destination('stats')});
# 50,000 events over 10,000 entities, five each, interleaved.
for my $b (0 .. 9)
{
	sql(qq{
	  SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
	    'tenant_id', '00000000-0000-0000-0000-0000000000c1', 'store_id', '00000000-0000-0000-0000-0000000000d1',
	    'entity_type', 'Sku', 'entity_id', 'sku-' || (g % 10000), 'event_type', 'stock.set',
	    'payload', jsonb_build_object('qty', g)) ORDER BY g)
	    FROM generate_series($b * 5000, $b * 5000 + 4999) g))});
}
is(sql(q{SELECT count(*) FROM ves.outbox WHERE status = 'pending'}), 50000, '50,000 rows queued');
is(sql(q{SELECT reltuples FROM pg_class WHERE oid = 'ves.outbox'::regclass}), 0, 'the statistics still say empty');

$node->safe_psql('postgres', q{
  ALTER SYSTEM SET auto_explain.log_min_duration = 0;
  ALTER SYSTEM SET auto_explain.log_analyze = on;
  ALTER SYSTEM SET auto_explain.log_timing = off;
  ALTER SYSTEM SET auto_explain.log_buffers = on;
  ALTER SYSTEM SET auto_explain.log_format = 'json';
  ALTER SYSTEM SET auto_explain.log_nested_statements = on;
});
my $log_offset = -s $node->logfile;
sql('SELECT pg_reload_conf()');
ok(wait_until(30, sub { sql(q{SELECT current_setting('auto_explain.log_min_duration')}) eq '0' }),
	'auto_explain logs every statement');
sleep 1;    # the worker has re-read its settings
my $drain_started = time;
sql(q{SELECT ves.resume_destination('stats')});
ok($sink->wait_for(3000, '/stats', 120), 'the worker drains the queue');
my $drain_seconds = time - $drain_started + 1;
$node->safe_psql('postgres', 'ALTER SYSTEM RESET auto_explain.log_min_duration; SELECT pg_reload_conf()');

# The worker's claims, from the server log.
my $log = substr(slurp_file($node->logfile), $log_offset);
my (@claims, $worst, $worst_text);
while ($log =~ /duration: ([\d.]+) ms\s+plan:\n\t(\{\n.*?\n\t\})\n/sg)
{
	my ($ms, $json) = ($1, $2);
	my $plan = eval { decode_json($json) } or next;
	next unless ($plan->{'Query Text'} // '') =~ /UPDATE ves.outbox o SET lease_until = now\(\) \+/;
	my ($read, $claimed) = (0, 0);
	my $walk;
	$walk = sub {
		my ($n) = @_;
		my $loops = $n->{'Actual Loops'} // 1;
		# Rows every scan returned or threw away, and pairs a join threw away.
		if (($n->{'Node Type'} // '') =~ /Scan/)
		{
			$read += (($n->{'Actual Rows'} // 0) + ($n->{'Rows Removed by Filter'} // 0)
				  + ($n->{'Rows Removed by Index Recheck'} // 0)) * $loops;
		}
		$read += ($n->{'Rows Removed by Join Filter'} // 0) * $loops;
		$claimed = $n->{'Actual Rows'} if ($n->{'Node Type'} // '') eq 'ModifyTable';
		$walk->($_) for @{ $n->{Plans} // [] };
	};
	$walk->($plan->{Plan});
	# Pages touched, dead index entries included (rows that were synced
	# leave theirs in the indexes until vacuum).
	my $pages = ($plan->{Plan}{'Shared Hit Blocks'} // 0) + ($plan->{Plan}{'Shared Read Blocks'} // 0);
	push @claims, { ms => $ms, read => $read, claimed => $claimed, pages => $pages };
	if (!$worst || $read / ($claimed + 1) > $worst->{read} / ($worst->{claimed} + 1))
	{
		$worst = $claims[-1];
		$worst_text = $json;
	}
}
cmp_ok(scalar(@claims), '>=', 10, scalar(@claims) . ' claims of the worker logged');
cmp_ok((sort { $b <=> $a } map { $_->{claimed} } @claims)[0], '>=', 32, 'claims take dozens of rows at a time');
my ($total_read, $total_claimed) = (0, 0);
$total_read += $_->{read} for @claims;
$total_claimed += $_->{claimed} for @claims;
note(sprintf('%d claims, %d rows claimed, %d outbox entries read, %.2f ms per claim on average',
	scalar(@claims), $total_claimed, $total_read, eval { my $t = 0; $t += $_->{ms} for @claims; $t / @claims }));
# Each claimed row costs its own entry, its entity probe (one entry) and the
# update; skipped rows (leased, blocked behind their entity) add a few.
cmp_ok($worst->{read}, '<=', 8 * ($worst->{claimed} + 1) + 64,
	"every claim reads a bounded number of entries (worst: $worst->{read} for $worst->{claimed} claimed)")
  or diag($worst_text);
cmp_ok($total_read, '<=', 6 * $total_claimed + 64 * @claims, 'in all, a few entries per claimed row');
# Pages: a claim that starts at its scan floor touches a few dozen per
# claimed row (the entry, the row, the entity probe's descent, the update and
# its index entries). A full scan, which starts from the first entry of the
# open-rows index (after the destination is resumed and every safety poll),
# also walks over the entries that synced rows leave until vacuum, and over
# the heap page of each one not yet marked dead: at most one pass over the
# index and the table, never one per candidate.
my $poll_seconds = sql(q{SELECT (ves.get_sync_settings()->>'safety_poll_ms')::int}) / 1000;
my $full_scans = 2 + int($drain_seconds / $poll_seconds);
my $one_pass = sql(q{SELECT (pg_relation_size('ves.outbox_open_idx') + pg_relation_size('ves.outbox')) / 8192});
my @by_pages = sort { $b->{pages} - 30 * ($b->{claimed} + 1) <=> $a->{pages} - 30 * ($a->{claimed} + 1) } @claims;
note('pages per claim (pages/claimed), most first: '
	  . join(' ', map { "$_->{pages}/$_->{claimed}" } @by_pages[0 .. ($#by_pages < 9 ? $#by_pages : 9)]));
my @over = grep { $_->{pages} > 30 * ($_->{claimed} + 1) + 200 } @claims;
cmp_ok(scalar(@over), '<=', $full_scans,
	"claims past a few dozen pages per claimed row are at most the full scans ($full_scans in ${drain_seconds} s)");
cmp_ok($by_pages[0]{pages}, '<=', 30 * ($by_pages[0]{claimed} + 1) + 200 + $one_pass,
	"no claim touches more than one pass over the open-rows index and the table (worst: $by_pages[0]{pages} for $by_pages[0]{claimed} claimed, one pass $one_pass)"
);

# The claim plan uses the two outbox indexes, never a sequential scan or a sort.
my %nodes;
for my $c ($worst_text =~ /"Node Type": "([^"]+)"/g) { $nodes{$c}++ }
ok(!$nodes{'Seq Scan'} && !$nodes{'Sort'}, 'no sequential scan and no sort in the claim plan');
like($worst_text, qr/"Index Name": "outbox_entity_idx"/, 'the per-entity check probes outbox_entity_idx');
like($worst_text, qr/"Index Name": "outbox_open_idx"/, 'candidates come from outbox_open_idx');

ok(wait_until(120, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'all 50,001 rows end synced');

$node->stop;
done_testing();
