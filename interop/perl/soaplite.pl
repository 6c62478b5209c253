#!/usr/bin/perl
# Interop checks with SOAP::Lite (Debian libsoap-lite-perl), a client that
# builds its envelopes without a WSDL, the way legacy Perl integrations of ACC
# do: Logon, GetUserInfo, Logoff, the logged-off token refused (XSV-350008),
# and the XSV-350012 fault on a wrong password.
#
#   perl soaplite.pl <base-url> <login> <password>
#
# or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD (CP_BAD_PASSWORD overrides the
# wrong password, default "<password>-wrong"). CP_TRACE=1 prints the HTTP
# exchanges.
use strict;
use warnings;

use SOAP::Lite ($ENV{CP_TRACE} ? (+trace => [qw(transport)]) : ());

# ACC marks XML outputs (pSessionInfo) with the Apache SOAP encodingStyle
# "http://xml.apache.org/xml-soap/literalxml", which SOAP::Lite's deserializer
# rejects ("Unrecognized/unsupported value of encodingStyle attribute") unless
# told it is supported: any SOAP::Lite client of a real ACC server needs this.
push @SOAP::Constants::SUPPORTED_ENCODING_STYLES, 'http://xml.apache.org/xml-soap/literalxml';

use FindBin;
use lib $FindBin::Bin;
use Checks;

# client returns a SOAP::Lite object bound to the SOAP router. ACC wants the
# SOAPAction "<schema>#<Method>", not SOAP::Lite's default "<uri>#<Method>".
sub client {
    my ($base) = @_;
    return SOAP::Lite
        ->proxy("$base/nl/jsp/soaprouter.jsp", timeout => 30)
        ->uri('urn:xtk:session')
        ->on_action(sub { "xtk:session#$_[1]" })
        ->on_fault(sub { my ($soap, $res) = @_; return ref $res ? $res : die "transport error: " . $soap->transport->status . "\n" });
}

# Parameters go by position, session token first, as ACC reads them.
sub logon {
    my ($soap, $login, $password) = @_;
    return $soap->call('Logon',
        SOAP::Data->name('sessiontoken')->type('string')->value(''),
        SOAP::Data->name('strLogin')->type('string')->value($login),
        SOAP::Data->name('strPassword')->type('string')->value($password),
        # elemParameters is an XML (DOMElement) parameter: an empty element.
        SOAP::Data->type('xml' => '<elemParameters/>'),
    );
}

sub get_user_info {
    my ($soap, $session) = @_;
    return $soap->call('GetUserInfo', SOAP::Data->name('sessiontoken')->type('string')->value($session));
}

sub main {
    my $base = $ARGV[0] // $ENV{CP_BASE_URL} // '';
    my $login = $ARGV[1] // $ENV{CP_LOGIN} // '';
    my $password = $ARGV[2] // $ENV{CP_PASSWORD} // '';
    $base =~ s{/+$}{};
    if ($base eq '' || $login eq '' || $password eq '') {
        print STDERR "usage: perl soaplite.pl <base-url> <login> <password>\n";
        exit 2;
    }
    my $bad = $ENV{CP_BAD_PASSWORD} || "$password-wrong";
    my $soap = client($base);

    # --- Logon ---
    my $som = logon($soap, $login, $password);
    check(!$som->fault, "Logon as $login", describe_som($som)) or return;
    my $session = $som->valueof('//LogonResponse/pstrSessionToken') // '';
    my $security = $som->valueof('//LogonResponse/pstrSecurityToken') // '';
    check($session ne '', 'Logon returns a non-empty pstrSessionToken', describe_som($som));
    check($security ne '', 'Logon returns a non-empty pstrSecurityToken', describe_som($som));
    my $login_attr = $som->dataof('//LogonResponse/pSessionInfo/sessionInfo/userInfo');
    check($login_attr && ($login_attr->attr->{login} // '') eq $login,
        'pSessionInfo holds sessionInfo/userInfo with the login',
        $login_attr ? 'login=' . ($login_attr->attr->{login} // 'undef') : 'no userInfo');

    # --- GetUserInfo, before and after Logoff ---
    $som = get_user_info($soap, $session);
    my $user = $som->fault ? undef : $som->dataof('//GetUserInfoResponse/pUserInfo/userInfo');
    check($user && ($user->attr->{login} // '') eq $login,
        'GetUserInfo with the session token returns userInfo with the login', describe_som($som));

    # --- Logoff ---
    $som = $soap->call('Logoff', SOAP::Data->name('sessiontoken')->type('string')->value($session));
    check(!$som->fault, 'Logoff with the session token', describe_som($som));

    $som = get_user_info($soap, $session);
    check($som->fault && ($som->faultstring // '') =~ /^XSV-350008/,
        'GetUserInfo with the logged-off token: faultstring starts with XSV-350008', describe_som($som));

    # --- Wrong password ---
    $som = logon($soap, $login, $bad);
    check($som->fault, 'Logon with a wrong password raises a fault', describe_som($som)) or return;
    my $fs = $som->faultstring // '';
    check($fs =~ /^XSV-350012/, 'faultstring starts with XSV-350012', "'$fs'");
}

run(\&main);
