# The plans of the sync worker's platform statements, as auto_explain logs
# them: a claim looks each claimed row's listings and counts up by key, and
# the record of pushed counts finds each listing it writes by its key,
# whatever the statistics said when the worker made its plans (it keeps
# them while the table grows): a plan that hashed a record's few outcomes
# against ves.listings would read every listing of the table at every
# record. The worker runs these statements with scans, sorts and joins
# other than index lookups in nested loops turned off
# (src/pg/sync/outbox_sql.cpp, run_indexed); this test holds the plans to
# that shape, past the five custom plans, with a small table's statistics.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('plans');
sub sql { return $node->safe_psql('postgres', $_[0]); }
$node->append_conf('postgresql.conf', <<'CONF');
shared_preload_libraries = 'pg_ves,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
log_min_messages = log
CONF
$node->restart;
my $platform = start_platform('shopify');
my $port = $platform->port;
my $tenant = '11111111-1111-4111-8111-111111111154';
my $store = '22222222-2222-4222-8222-222222222254';
my $skus = 300;

sql(qq{SELECT ves.create_destination('shop', 'shopify', 'http://127.0.0.1:$port',
  '{"tenant_id": "$tenant", "store_id": "$store", "access_token": "shpat_pgves_test",
    "location_id": "gid://shopify/Location/1", "rate_limit": 0, "concurrency": 4}')});
sql(qq{SELECT count(*) FROM generate_series(1, $skus) g, ves.set_stock('$tenant', '$store', 'SKU-' || g, 10)});
sql(qq{SELECT count(*) FROM generate_series(1, $skus) g,
         ves.map_listing('shop', 'SKU-' || g,
                         jsonb_build_object('inventory_item_id', 'gid://shopify/InventoryItem/' || (1000 + g)))});
ok(enable_worker($node), 'a sync worker runs');
sub open_rows { return sql(q{SELECT count(*) FROM ves.outbox WHERE status IN ('pending', 'failed')}); }
ok(wait_until(120, sub { open_rows() == 0 }), 'the initial counts are pushed');

# Statistics of a small table, and a worker that plans again with them.
sql('ANALYZE ves.listings, ves.inventory, ves.outbox');
my ($old) = worker_pids($node);
sql("SELECT pg_terminate_backend($old)");
ok(wait_until(60, sub { my ($p) = worker_pids($node); $p && $p != $old }), 'the worker starts again');
my $from = -s $node->logfile;

# A few SKUs change at a time, as a store's sales do: more rounds than the
# five custom plans a saved statement gets before its generic plan.
my $rounds = 12;
for my $round (1 .. $rounds)
{
	sql(qq{SELECT count(*) FROM generate_series($round * 7, $round * 7 + 5) g,
	         ves.set_stock('$tenant', '$store', 'SKU-' || g, 20 + $round)});
	wait_until(60, sub { open_rows() == 0 }) or last;
}
is(open_rows(), '0', "$rounds rounds of changes are pushed");
is(sql("SELECT count(*) FROM ves.listings WHERE known_quantity = 20 + $rounds"), '6',
	'the platform has the last counts');

# Each logged plan: from its "duration: ... plan:" line to the next log line.
my $log = slurp_file($node->logfile, $from);
my @plans = split /^(?=\S.*LOG:  duration: )/m, $log;
my @records = grep { /Update on listings l/ } @plans;
my @claims = grep { /Query Text: WITH c AS \(UPDATE ves\.outbox/ } @plans;
cmp_ok(scalar(@records), '>=', $rounds, 'the records of pushed counts are logged');
cmp_ok(scalar(@claims), '>=', $rounds, 'the claims are logged');
my @bad_records = grep { !/Index Scan using listings_pkey on listings l/ || /Hash Join|Merge Join|Seq Scan/ } @records;
is(scalar(@bad_records), 0, 'every record finds its listings by key, in nested loops')
  or diag($bad_records[0]);
my @bad_claims = grep { !/Index Scan using listings_pkey on listings l/ || /Hash Join|Merge Join|Seq Scan/ } @claims;
is(scalar(@bad_claims), 0, 'every claim looks its listings and counts up by key')
  or diag($bad_claims[0]);

$platform->stop;
$node->stop;
done_testing();
