#!/usr/bin/perl
# Privacy-request checks with SOAP::Lite (Debian libsoap-lite-perl), sending
# the envelope of Adobe's documented SoapUI example: every element in the
# "urn:" prefix of the service's URN, no xsi:type, booleans as 1/0 and no
# regulation parameter (the pre-20.2 call, GDPR by default):
#
#   <urn:CreateRequestByName>
#     <urn:sessiontoken>...</urn:sessiontoken>
#     <urn:namespaceName>defaultNamespace1</urn:namespaceName>
#     <urn:reconciliationValue>...</urn:reconciliationValue>
#     <urn:type>1</urn:type>
#     <urn:confirmDeletePending>1</urn:confirmDeletePending>
#   </urn:CreateRequestByName>
#
# Checks: Logon, CreateRequestByName on nms:privacyRequest and on the legacy
# nms:gdprRequest (integer ids, the same id for an identical active
# request), the SOP-330011 fault for type 3 and for an operator without
# privacyRight, Logoff.
#
#   perl soaplite_privacy.pl <base-url> <login> <password>
#
# or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD. CP_UNPRIVILEGED_LOGIN and
# CP_UNPRIVILEGED_PASSWORD name an operator without privacyRight (optional).
# CP_TRACE=1 prints the HTTP exchanges.
use strict;
use warnings;

use SOAP::Lite ($ENV{CP_TRACE} ? (+trace => [qw(transport)]) : ());

# See soaplite.pl: ACC's XML outputs use Apache's literalxml encodingStyle.
push @SOAP::Constants::SUPPORTED_ENCODING_STYLES, 'http://xml.apache.org/xml-soap/literalxml';

use FindBin;
use lib $FindBin::Bin;
use Checks;

# client returns a SOAP::Lite object for one ACC service (schema id such as
# nms:privacyRequest) writing SoapUI-style envelopes: the method and its
# parameters in the prefix "urn" bound to "urn:<schema>", no xsi:type.
sub client {
    my ($base, $schema) = @_;
    my $soap = SOAP::Lite
        ->proxy("$base/nl/jsp/soaprouter.jsp", timeout => 30)
        ->ns("urn:$schema", 'urn')
        ->autotype(0)
        ->on_action(sub { "$schema#$_[1]" })
        ->on_fault(sub { my ($soap, $res) = @_; return ref $res ? $res : die "transport error: " . $soap->transport->status . "\n" });
    $soap->serializer->readable(1);
    return $soap;
}

# param is one parameter element: urn-prefixed, untyped.
sub param {
    my ($name, $value) = @_;
    return SOAP::Data->name($name)->prefix('urn')->value($value);
}

sub logon {
    my ($session, $login, $password) = @_;
    my $som = $session->call('Logon',
        param(sessiontoken => ''),
        param(strLogin => $login),
        param(strPassword => $password),
        SOAP::Data->type('xml' => '<urn:elemParameters/>'),
    );
    return $som->fault ? (undef, $som) : ($som->valueof('//LogonResponse/pstrSessionToken') // '', $som);
}

# create_request sends Adobe's SoapUI example: no regulation, boolean as 1.
sub create_request {
    my ($soap, $token, %over) = @_;
    my %p = (namespaceName => 'defaultNamespace1', reconciliationValue => 'soaplite@example.com',
        type => 1, confirmDeletePending => 1, %over);
    return $soap->call('CreateRequestByName',
        param(sessiontoken => $token),
        map { param($_ => $p{$_}) } qw(namespaceName reconciliationValue type confirmDeletePending));
}

sub request_id {
    my ($som) = @_;
    return undef if !ref $som || $som->fault;
    return $som->valueof('//CreateRequestByNameResponse/id');
}

sub expect_fault {
    my ($som, $what, $detail) = @_;
    check($som->fault, "$what raises a fault", describe_som($som)) or return;
    check(($som->faultstring // '') =~ /^SOP-330011/, "$what: faultstring starts with SOP-330011", describe_som($som));
    check(($som->faultdetail // '') =~ $detail, "$what: detail matches $detail", describe_som($som)) if $detail;
}

sub main {
    my $base = $ARGV[0] // $ENV{CP_BASE_URL} // '';
    my $login = $ARGV[1] // $ENV{CP_LOGIN} // '';
    my $password = $ARGV[2] // $ENV{CP_PASSWORD} // '';
    $base =~ s{/+$}{};
    if ($base eq '' || $login eq '' || $password eq '') {
        print STDERR "usage: perl soaplite_privacy.pl <base-url> <login> <password>\n";
        exit 2;
    }
    my $session = client($base, 'xtk:session');
    my $privacy = client($base, 'nms:privacyRequest');
    my $legacy = client($base, 'nms:gdprRequest');

    my ($token, $som) = logon($session, $login, $password);
    check(defined $token && $token ne '', "Logon as $login", describe_som($som)) or return;

    $som = create_request($privacy, $token);
    my $id = request_id($som);
    check(defined $id && $id =~ /^[1-9][0-9]*$/, 'nms:privacyRequest CreateRequestByName (SoapUI style) returns an integer id',
        describe_som($som));
    $som = create_request($privacy, $token);
    check(defined request_id($som) && defined $id && request_id($som) == $id,
        'an identical active request returns the same id', describe_som($som));

    $som = create_request($legacy, $token, reconciliationValue => 'soaplite-legacy@example.com', confirmDeletePending => 0);
    my $legacy_id = request_id($som);
    check(defined $legacy_id && $legacy_id =~ /^[1-9][0-9]*$/ && defined $id && $legacy_id != $id,
        'nms:gdprRequest CreateRequestByName (SoapUI style) returns a new integer id', describe_som($som));

    expect_fault(create_request($privacy, $token, type => 3), 'CreateRequestByName with type 3');
    expect_fault(create_request($privacy, $token, namespaceName => 'noSuchNamespace'),
        'CreateRequestByName with an unknown namespace', qr/noSuchNamespace/);

    if (my $unprivileged = $ENV{CP_UNPRIVILEGED_LOGIN}) {
        my ($other, $osom) = logon($session, $unprivileged, $ENV{CP_UNPRIVILEGED_PASSWORD} // '');
        check(defined $other && $other ne '', "Logon as $unprivileged (no privacyRight)", describe_som($osom));
        expect_fault(create_request($privacy, $other), "CreateRequestByName as $unprivileged", qr/privacyRight/)
            if defined $other;
    }

    $som = $session->call('Logoff', param(sessiontoken => $token));
    check(!$som->fault, 'Logoff', describe_som($som));
}

run(\&main);
