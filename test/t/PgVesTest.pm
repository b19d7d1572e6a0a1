# Shared by the pg_ves TAP tests: a started cluster with pg_ves preloaded
# (settings from $ENV{PGVES_TEST_CONF}, as scripts/test.sh passes them) and
# the extension created in the "postgres" database.
package PgVesTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(new_node);

# Cluster::init runs pg_regress --config-auth. scripts/test.sh sets
# PG_REGRESS; a hand-run prove may not, so find it next to PGXS.
if (!$ENV{PG_REGRESS})
{
	my $pgxs = `pg_config --pgxs`;
	chomp $pgxs;
	($ENV{PG_REGRESS} = $pgxs) =~
	  s{/src/makefiles/pgxs\.mk$}{/src/test/regress/pg_regress};
}

sub new_node
{
	my ($name) = @_;
	my $conf = $ENV{PGVES_TEST_CONF}
	  or die "PGVES_TEST_CONF must name the pg_ves test settings file\n";

	# init() listens on a Unix socket only (no TCP) on this platform.
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', slurp_file($conf));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_ves');
	return $node;
}

1;
