#!/bin/sh
# Runs one DMTF Redfish validator against a running service, fully offline:
#   contrib/redfish-validate.sh MODE URL USER PASSWORD OUTDIR
#     MODE      service | interop | protocol
#     URL       https://HOST:PORT or http://HOST:PORT (no path)
#     OUTDIR    reports go to OUTDIR/MODE/ (the service and interop
#               validators add a timestamped folder below it)
# Prints each FAIL and WARN finding, then one line
#   MODE: PASS=n WARN=n FAIL=n NOT_TESTED=n report=PATH
# and exits 0 only when the validator ran, wrote its report, and the report
# holds no FAIL (WARN and NOT_TESTED do not fail the run).
#
# Environment:
#   REDFISH_AUTHTYPE  Session (default, what Ironic tries first) or Basic;
#                     service and interop modes only: the protocol validator
#                     always logs in with a session and also tries Basic.
#   REDFISH_PROFILE   interop profile (default: Ironic's, from fixtures/redfish)
#
# Certificates are never verified (the service's is self-signed), and
# REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are unset for the tools, since
# requests lets them override verify=False.
set -eu
if [ $# -ne 5 ]; then
    echo "usage: $0 service|interop|protocol URL USER PASSWORD OUTDIR" >&2
    exit 2
fi
mode=$1 url=$2 user=$3 password=$4 outdir=$5
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv=$("$here/redfish-tools.sh")
authtype=${REDFISH_AUTHTYPE:-Session}
profile=${REDFISH_PROFILE:-$root/fixtures/redfish/OpenStackIronicProfile.v1_2_0.json}
report_dir=$outdir/$mode
mkdir -p "$report_dir"
log=$report_dir/console.txt

run() { env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$@" >"$log" 2>&1; }

rc=0
case $mode in
service)
    # --skipschema: use only the local schema directory; without it the
    # tool fetches DSP8010.zip from dmtf.org and the service's $metadata
    # references.
    run "$venv/bin/rf_service_validator" --rhost "$url" --user "$user" \
        --password "$password" --authtype "$authtype" \
        --schema_directory "$root/target/redfish-schemas" --skipschema \
        --logdir "$report_dir" || rc=$?
    ;;
interop)
    run "$venv/bin/rf_interop_validator" --rhost "$url" --user "$user" \
        --password "$password" --authtype "$authtype" \
        --logdir "$report_dir" "$profile" || rc=$?
    ;;
protocol)
    # The protocol validator always multicasts SSDP M-SEARCH requests
    # (239.255.255.250 and ff02::c, port 1900) to look for the service;
    # the tests must send nothing off this machine, so discovery is
    # replaced by an empty answer (its SERV_SSDP_* assertions then say
    # NOT_TESTED). --avoid-http-redirect: no plain-HTTP probe of port 80
    # when the URL is https.
    run "$venv/bin/python" -c '
import sys
import redfish_protocol_validator.utils as utils
utils.discover_ssdp = lambda *args, **kwargs: {}
from redfish_protocol_validator.console_scripts import main
sys.argv[0] = "rf_protocol_validator"
sys.exit(main())
' --rhost "$url" --user "$user" --password "$password" --no-cert-check \
        --avoid-http-redirect --report-dir "$report_dir" --report-type both || rc=$?
    ;;
*)
    echo "$0: unknown mode $mode (service, interop or protocol)" >&2
    exit 2
    ;;
esac

summary_rc=0
"$venv/bin/python" "$here/redfish_report.py" "$mode" "$report_dir" || summary_rc=$?
if [ "$summary_rc" -eq 2 ]; then
    echo "$mode: the validator wrote no report (exit $rc); its output:" >&2
    tail -n 30 "$log" >&2
fi
echo "$mode: console output in $log"
if [ "$rc" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then
    exit 1
fi
