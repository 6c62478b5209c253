<?php
// Privacy-request checks with PHP's SoapClient (php-cli + php-soap), a
// WSDL-driven client: load the xtk:session and nms:privacyRequest WSDLs,
// Logon, CreateRequestByName with the session token in the body (an integer
// id back, the same id for an identical active request), and the SOP-330011
// fault for type 3, for ConfirmDeletePending on a fresh request and for an
// operator without privacyRight.
//
//   php soapclient_privacy.php <base-url> <login> <password>
//
// or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD. CP_UNPRIVILEGED_LOGIN and
// CP_UNPRIVILEGED_PASSWORD name an operator without privacyRight (optional).
// CP_TRACE=1 prints the SOAP envelopes.

require __DIR__ . '/checks.php';

function wsdlClient($base, $schema)
{
    return new SoapClient("$base/nl/jsp/schemawsdl.jsp?schema=$schema",
        ['trace' => 1, 'exceptions' => true, 'cache_wsdl' => WSDL_CACHE_NONE]);
}

function logon($session, $login, $password)
{
    // elemParameters: see soapclient.php (xs:any needs an "any" property).
    $result = $session->Logon([
        'sessiontoken' => '',
        'strLogin' => $login,
        'strPassword' => $password,
        'elemParameters' => ['any' => ''],
    ]);
    trace($session);
    return isset($result->pstrSessionToken) ? (string)$result->pstrSessionToken : '';
}

function createRequest($privacy, $token, $overrides = [])
{
    $result = $privacy->CreateRequestByName(array_merge([
        'sessiontoken' => $token,
        'namespaceName' => 'defaultNamespace1',
        'reconciliationValue' => 'php@example.com',
        'type' => 2,
        'confirmDeletePending' => true,
        'regulation' => 4,
    ], $overrides));
    trace($privacy);
    return $result->id ?? null;
}

// expectFault checks that $call raises a SoapFault whose faultstring starts
// with SOP-330011 (and whose detail matches $detailPattern when given).
function expectFault($client, $what, $call, $detailPattern = null)
{
    try {
        $call();
        trace($client);
        check(false, "$what raises a SoapFault", 'it succeeded');
    } catch (SoapFault $f) {
        trace($client);
        check(strpos((string)$f->faultstring, 'SOP-330011') === 0, "$what: faultstring starts with SOP-330011",
            var_export($f->faultstring, true));
        if ($detailPattern !== null) {
            $detail = isset($f->detail) ? (is_scalar($f->detail) ? (string)$f->detail : json_encode($f->detail)) : '';
            check(preg_match($detailPattern, $detail) === 1, "$what: detail matches $detailPattern", var_export($detail, true));
        }
    }
}

function main()
{
    $base = rtrim(arg(1, 'CP_BASE_URL'), '/');
    $login = arg(2, 'CP_LOGIN');
    $password = arg(3, 'CP_PASSWORD');
    if ($base === '' || $login === '' || $password === '') {
        fwrite(STDERR, "usage: php soapclient_privacy.php <base-url> <login> <password>\n");
        exit(2);
    }
    $session = wsdlClient($base, 'xtk:session');
    $privacy = wsdlClient($base, 'nms:privacyRequest');
    $functions = implode("\n", $privacy->__getFunctions());
    check(strpos($functions, ' CreateRequestByName(') !== false && strpos($functions, ' ConfirmDeletePending(') !== false,
        'nms:privacyRequest WSDL declares CreateRequestByName and ConfirmDeletePending', $functions);

    $token = logon($session, $login, $password);
    check($token !== '', "Logon as $login");

    $id = createRequest($privacy, $token);
    check(is_int($id) && $id > 0, 'CreateRequestByName returns an int id', var_export($id, true));
    $again = createRequest($privacy, $token);
    check($again === $id, 'an identical active request returns the same id', var_export($again, true));

    expectFault($privacy, 'CreateRequestByName with type 3', function () use ($privacy, $token) {
        createRequest($privacy, $token, ['type' => 3]);
    });
    expectFault($privacy, 'CreateRequestByName with an unknown namespace', function () use ($privacy, $token) {
        createRequest($privacy, $token, ['namespaceName' => 'noSuchNamespace']);
    }, '/noSuchNamespace/');
    expectFault($privacy, 'ConfirmDeletePending on a fresh request', function () use ($privacy, $token, $id) {
        $privacy->ConfirmDeletePending(['sessiontoken' => $token, 'privacyRequestId' => $id]);
    });

    $unprivileged = getenv('CP_UNPRIVILEGED_LOGIN');
    if ($unprivileged) {
        $other = logon($session, $unprivileged, (string)getenv('CP_UNPRIVILEGED_PASSWORD'));
        check($other !== '', "Logon as $unprivileged (no privacyRight)");
        expectFault($privacy, "CreateRequestByName as $unprivileged", function () use ($privacy, $other) {
            createRequest($privacy, $other);
        }, '/privacyRight/');
        $session->Logoff(['sessiontoken' => $other]);
    }

    $session->Logoff(['sessiontoken' => $token]);
    trace($session);
    check(true, 'Logoff');
}

run('main');
