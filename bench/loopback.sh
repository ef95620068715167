#!/bin/bash
# bench/loopback.sh PORT MODE CHECKOUT... : CPU per request of each checkout's sheer on loopback, interleaved
# rounds: one worker, no lab, as root or not (each checkout with its .venv; A/B of two builds on a noisy machine,
# where `python -m bench.opcodes` is the steadier measure and `python -m bench.ab` the lab's).
#   PORT: a free port base (PORT = upstream nginx, PORT+1 = sheer);
#   MODE: http | https (wrk -c8 through proxy_pass to a keepalive upstream) | tcp-new | tcp-keepalive (a stream
#   server) | tls-new (new TLS 1.3 handshakes, ECDSA P-256, `return 200`, two `openssl s_time -new` clients)
#   ROUNDS (default 3), SECS (default 5), CONNS (default 8), ACCESS=on (http/https: the access log written),
#   WWW=off (tls-new: no request, the handshake then the close, as the lab's tls-handshake) from the environment.
# Prints req/s and CPU µs per request (master + workers, utime+stime from /proc) per run, then medians.
set -u
port=$1; mode=$2; shift 2
dir=$(mktemp -d /tmp/sheer-cmp.XXXX)
trap 'kill $(cat $dir/up.pid 2>/dev/null) 2>/dev/null; rm -rf $dir' EXIT
cat > $dir/up.conf <<EOC
worker_processes 1; daemon on; pid $dir/up.pid; error_log $dir/up.err;
events {}
http { access_log off; keepalive_requests 100000; server { listen 127.0.0.21:$port; location / { return 200 "hello world\n"; } } }
EOC
nginx -p $dir -c $dir/up.conf || exit 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $dir/key.pem -out $dir/cert.pem \
  -days 2 -subj /CN=localhost 2>/dev/null
s=$((port+1))
alog="access_log off;"; [ "${ACCESS:-off}" = on ] && alog="access_log $dir/access.log;"
case $mode in
http)  body="http { $alog upstream u { server 127.0.0.21:$port; keepalive 8; }
 server { listen 127.0.0.1:$s; location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }"
       url=http://127.0.0.1:$s/ ;;
https) body="http { $alog upstream u { server 127.0.0.21:$port; keepalive 8; }
 server { listen 127.0.0.1:$s ssl; ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem; ssl_protocols TLSv1.3;
 location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }"
       url=https://127.0.0.1:$s/ ;;
tls-new) body="http { access_log off; server { listen 127.0.0.1:$s ssl; ssl_certificate $dir/cert.pem;
 ssl_certificate_key $dir/key.pem; ssl_protocols TLSv1.3; location / { return 200; } } }" ;;
tcp-new|tcp-keepalive) body="stream { server { listen 127.0.0.1:$s; proxy_pass 127.0.0.21:$port; } }"
       url=http://127.0.0.1:$s/ ;;
*) echo "mode?"; exit 2;;
esac
echo "worker_processes 1; pid $dir/sheer.pid; error_log $dir/sheer.err; $body" > $dir/sheer.conf
hdr=(); [ $mode = tcp-new ] && hdr=(-H "Connection: close")
cpu() { local s=0; for p in $1 $(pgrep -P $1); do s=$((s + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $s; }
declare -A all
for round in $(seq ${ROUNDS:-3}); do
 for co in "$@"; do
  $co/.venv/bin/sheer -p $dir -c $dir/sheer.conf -g "daemon off;" > $dir/sheer.out 2>&1 & m=$!
  for i in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$s " && break; sleep 0.1; done; sleep 0.5
  t0=$(cpu $m)
  if [ $mode = tls-new ]; then
    www=(-www /); [ "${WWW:-on}" = off ] && www=()
    for c in 1 2; do openssl s_time -connect 127.0.0.1:$s -new "${www[@]}" -time ${SECS:-5} < /dev/null > $dir/st$c 2>&1 & done
    wait $(jobs -p | grep -v "^$m$")
    n=$(cat $dir/st1 $dir/st2 | awk '/connections in [0-9.]+s/{n+=$1} END{print n}')
    r=$(python3 -c "print(round($n/${SECS:-5},1))")
  else
    r=$(wrk -t1 -c${CONNS:-8} -d${SECS:-5}s "${hdr[@]}" $url | awk '/Requests\/sec/{print $2}')
  fi
  t1=$(cpu $m)
  us=$(python3 -c "print(round(($t1-$t0)*10000/($r*${SECS:-5}),1))")
  echo "$co round $round: $r req/s, $us µs CPU/req"
  all[$co]="${all[$co]:-} $us"
  kill $m; wait $m 2>/dev/null; while ss -ltn | grep -q "127.0.0.1:$s "; do sleep 0.2; done
 done
done
for co in "$@"; do echo "$co median µs CPU/req: $(python3 -c "import statistics,sys; print(statistics.median(map(float,sys.argv[1:])))" ${all[$co]})"; done
