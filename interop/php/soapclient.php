<?php
// Interop checks with PHP's SoapClient (php-cli + php-soap), a WSDL-driven
// client: load the xtk:session WSDL, Logon, Logoff, the logged-off token
// refused (XSV-350008; WSDL clients send the token in the body only), and
// the XSV-350012 fault on a wrong password.
//
//   php soapclient.php <base-url> <login> <password>
//
// or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD (CP_BAD_PASSWORD overrides the
// wrong password, default "<password>-wrong"). CP_TRACE=1 prints the SOAP
// envelopes.

require __DIR__ . '/checks.php';

function logon($client, $login, $password)
{
    // elemParameters is an XML parameter (type Element, a sequence of xs:any).
    // SoapClient maps xs:any to a property "any" holding raw XML; without it
    // SoapClient refuses to encode ("object has no 'any' property"), and an
    // empty string gives an empty <elemParameters></elemParameters>.
    return $client->Logon([
        'sessiontoken' => '',
        'strLogin' => $login,
        'strPassword' => $password,
        'elemParameters' => ['any' => ''],
    ]);
}

// userLogin returns the login attribute of the <userInfo> element in an XML
// output: SoapClient gives the xs:any content as raw XML in "any".
function userLogin($value)
{
    $xml = is_object($value) && isset($value->any) ? (string)$value->any : '';
    return preg_match('/<userInfo\b[^>]*\blogin=(["\'])(.*?)\1/', $xml, $m) ? html_entity_decode($m[2]) : null;
}

function main()
{
    $base = rtrim(arg(1, 'CP_BASE_URL'), '/');
    $login = arg(2, 'CP_LOGIN');
    $password = arg(3, 'CP_PASSWORD');
    if ($base === '' || $login === '' || $password === '') {
        fwrite(STDERR, "usage: php soapclient.php <base-url> <login> <password>\n");
        exit(2);
    }
    $bad = getenv('CP_BAD_PASSWORD') ?: $password . '-wrong';
    $wsdl = "$base/nl/jsp/schemawsdl.jsp?schema=xtk:session";

    $client = new SoapClient($wsdl, ['trace' => 1, 'exceptions' => true, 'cache_wsdl' => WSDL_CACHE_NONE]);
    check(true, "WSDL loaded from $wsdl");
    $functions = implode("\n", $client->__getFunctions());
    check(strpos($functions, ' Logon(') !== false && strpos($functions, ' Logoff(') !== false
        && strpos($functions, ' GetUserInfo(') !== false,
        'WSDL declares Logon, Logoff and GetUserInfo', $functions);

    // --- Logon ---
    $result = logon($client, $login, $password);
    trace($client);
    $session = isset($result->pstrSessionToken) ? (string)$result->pstrSessionToken : '';
    $security = isset($result->pstrSecurityToken) ? (string)$result->pstrSecurityToken : '';
    check($session !== '', 'Logon returns a non-empty pstrSessionToken', var_export($result, true));
    check($security !== '', 'Logon returns a non-empty pstrSecurityToken', var_export($result, true));
    check(userLogin($result->pSessionInfo ?? null) === $login,
        'pSessionInfo holds sessionInfo/userInfo with the login', var_export($result, true));

    // --- GetUserInfo, before and after Logoff ---
    try {
        $info = $client->GetUserInfo(['sessiontoken' => $session]);
        trace($client);
        check(userLogin($info->pUserInfo ?? null) === $login,
            'GetUserInfo with the session token returns userInfo with the login', var_export($info, true));
    } catch (SoapFault $f) {
        trace($client);
        check(false, 'GetUserInfo with the session token', "$f->faultcode $f->faultstring");
    }

    // --- The xtk:persist WSDL (answers in urn:wpp:default) and a data
    // schema's WSDL (nms:recipient implements xtk:persist) ---
    foreach (['xtk:persist', 'nms:recipient'] as $schema) {
        $url = "$base/nl/jsp/schemawsdl.jsp?schema=$schema";
        try {
            $other = new SoapClient($url, ['trace' => 1, 'exceptions' => true, 'cache_wsdl' => WSDL_CACHE_NONE]);
            check(true, "WSDL loaded from $url");
            $doc = $other->GetEntityIfMoreRecent(['sessiontoken' => $session, 'strPk' => 'xtk:schema|nms:recipient',
                'strMd5' => '', 'bMustExist' => true]);
            trace($other);
            $xml = $other->__getLastResponse();
            check(strpos($xml, '<schema') !== false && strpos($xml, 'name="recipient"') !== false,
                "$schema#GetEntityIfMoreRecent returns the nms:recipient schema", $xml);
        } catch (SoapFault $f) {
            check(false, "$schema WSDL: GetEntityIfMoreRecent", "$f->faultcode $f->faultstring");
        }
    }

    // --- Logoff ---
    try {
        $client->Logoff(['sessiontoken' => $session]);
        trace($client);
        check(true, 'Logoff with the session token');
    } catch (SoapFault $f) {
        trace($client);
        check(false, 'Logoff with the session token', "$f->faultcode $f->faultstring");
    }

    try {
        $client->GetUserInfo(['sessiontoken' => $session]);
        trace($client);
        check(false, 'GetUserInfo with the logged-off token raises a SoapFault', 'it succeeded');
    } catch (SoapFault $f) {
        trace($client);
        check(strpos((string)$f->faultstring, 'XSV-350008') === 0,
            'GetUserInfo with the logged-off token: faultstring starts with XSV-350008',
            var_export($f->faultstring, true));
    }

    // --- Wrong password ---
    try {
        logon($client, $login, $bad);
        trace($client);
        check(false, 'Logon with a wrong password raises a SoapFault', 'it succeeded');
    } catch (SoapFault $f) {
        trace($client);
        check(true, 'Logon with a wrong password raises a SoapFault');
        check(strpos((string)$f->faultstring, 'XSV-350012') === 0, 'faultstring starts with XSV-350012',
            var_export($f->faultstring, true));
    }
}

run('main');
