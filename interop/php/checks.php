<?php
// What the SoapClient interop scripts share: one result line per check, the
// arguments, the envelope trace (CP_TRACE=1), and the run that turns an
// unexpected error into a failed check and sets the exit status.

$failures = 0;

function check($cond, $what, $detail = null)
{
    global $failures;
    if ($cond) {
        echo "ok - $what\n";
    } else {
        $failures++;
        echo "FAIL - $what" . ($detail === null ? '' : ": $detail") . "\n";
    }
    return (bool)$cond;
}

function arg($i, $env)
{
    global $argv;
    if (isset($argv[$i]) && $argv[$i] !== '') {
        return $argv[$i];
    }
    $v = getenv($env);
    return $v === false ? '' : $v;
}

function trace($client)
{
    if (getenv('CP_TRACE')) {
        echo '> ' . $client->__getLastRequest() . "\n";
        echo '< ' . $client->__getLastResponse() . "\n";
    }
}

function run($main)
{
    global $failures;
    try {
        $main();
    } catch (Throwable $e) {
        $failures++;
        echo 'FAIL - unexpected error: ' . get_class($e) . ': ' . $e->getMessage() . "\n";
        if ($e instanceof SoapFault) {
            echo "faultcode: $e->faultcode\n";
        }
    }
    echo $failures === 0 ? "all checks passed\n" : "$failures check(s) failed\n";
    exit($failures === 0 ? 0 : 1);
}
