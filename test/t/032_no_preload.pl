# pg_ves on a server that does not preload it: CREATE EXTENSION is refused
# with a clear error and hint, nothing is left half-installed, and nothing
# can reach a commit callback that would raise after the commit record
# (which PANICs and restarts the whole server).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
$node->append_conf('postgresql.conf', "log_min_messages = warning\n");
$node->start;

my ($rc, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION pg_ves');
isnt($rc, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($err, qr/pg_ves must be loaded via shared_preload_libraries/, 'the error says why');
like($err, qr/HINT:\s+Add pg_ves to shared_preload_libraries/, 'and the hint says what to do');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'pg_ves'"),
	'0', 'no extension is left behind');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_namespace WHERE nspname = 'ves'"),
	'0', 'nor its schema');

# Loading the library by hand in a session and creating keys or appending
# through its functions must not reach a commit that fails: the functions
# refuse before anything is written.
($rc, $out, $err) = $node->psql('postgres', q{
	CREATE FUNCTION pg_temp.keys_changed() RETURNS void AS '$libdir/pg_ves', 'ves_keys_changed' LANGUAGE C;
	BEGIN; SELECT pg_temp.keys_changed(); COMMIT;
});
isnt($rc, 0, 'a key change is refused before its commit');
like($err, qr/shared_preload_libraries/, 'with the same error');

# The delivery metrics live in shared memory too: without it their
# functions answer with nothing counted rather than fail or crash.
is( $node->safe_psql(
		'postgres', q{
	CREATE FUNCTION pg_temp.live(boolean, OUT destination_id int, OUT counters bigint[])
	  RETURNS SETOF record AS '$libdir/pg_ves', 'ves_sync_metrics_live' LANGUAGE C;
	CREATE FUNCTION pg_temp.reset() RETURNS void AS '$libdir/pg_ves', 'ves_reset_sync_metrics' LANGUAGE C;
	SELECT pg_temp.reset();
	SELECT count(*) FROM pg_temp.live(true);
}), "\n0", 'without preload the metrics functions count nothing and do not fail');

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
my $log = slurp_file($node->logfile);
unlike($log, qr/PANIC|terminated by signal|server process .* was terminated/,
	'no PANIC and no crash in the server log');

$node->stop;
done_testing();
