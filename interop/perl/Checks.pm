# What the SOAP::Lite interop scripts share: one result line per check, a
# readable description of an answer, and the run that turns an unexpected
# error into a failed check and sets the exit status.
package Checks;
use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(check describe_som run);

my $failures = 0;

sub check {
    my ($cond, $what, $detail) = @_;
    if ($cond) {
        print "ok - $what\n";
    } else {
        $failures++;
        print "FAIL - $what" . (defined $detail ? ": $detail" : '') . "\n";
    }
    return $cond;
}

sub describe_som {
    my ($som) = @_;
    return 'no response' unless ref $som;
    return 'fault ' . ($som->faultcode // '') . ' ' . ($som->faultstring // '') . ' / ' . ($som->faultdetail // '')
        if $som->fault;
    return 'response ' . ($som->context && $som->context->transport
        ? ($som->context->transport->status // '') : '');
}

sub run {
    my ($main) = @_;
    eval { $main->(); 1 } or do {
        $failures++;
        print "FAIL - unexpected error: $@\n";
    };
    print $failures == 0 ? "all checks passed\n" : "$failures check(s) failed\n";
    exit($failures == 0 ? 0 : 1);
}

1;
