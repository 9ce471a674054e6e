#!/bin/sh
# Starts or stops a throw-away sshd on a free loopback port for the pipeline
# tests. Everything lives in STATEDIR (in the build tree): host key, client
# key, authorized_keys, sshd_config, pid file, log, and `env` (PORT, KEY)
# for the tests to source.
#   sshd-fixture.sh start STATEDIR     exit 0 once sshd answers, 1 otherwise
#   sshd-fixture.sh stop STATEDIR      kills the sshd started here (by pid)
# Needs Debian's openssh-server (/usr/sbin/sshd) and runs it as the current
# user (root in CI, as the issue's recipe).
set -eu
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: sshd-fixture.sh start|stop STATEDIR" >&2
  exit 2
fi
SSHD=${XENSTREAM_SSHD:-/usr/sbin/sshd}

stop() {
  if [ -f "$dir/sshd.pid" ]; then
    pid=$(cat "$dir/sshd.pid")
    kill "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    rm -f "$dir/sshd.pid"
  fi
}

case $cmd in
stop)
  stop
  exit 0
  ;;
start) ;;
*)
  echo "sshd-fixture: unknown command $cmd" >&2
  exit 2
  ;;
esac

if [ ! -x "$SSHD" ]; then
  echo "sshd-fixture: error: $SSHD not found (apt-get install -y openssh-server)" >&2
  exit 1
fi
stop
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p /run/sshd
chmod 0755 /run/sshd
rm -f "$dir/host_key" "$dir/host_key.pub" "$dir/client_key" "$dir/client_key.pub"
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
cp "$dir/client_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/client_key" "$dir/host_key" "$dir/authorized_keys"

# A free port: bind to 0 and let the kernel choose (retry if sshd loses a race).
attempt=0
while :; do
  attempt=$((attempt + 1))
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel ERROR
MaxStartups 50
CFG
  "$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log"
  cat > "$dir/env" <<ENV
PORT=$port
KEY=$dir/client_key
ENV
  i=0
  while [ $i -lt 50 ]; do
    if ssh -p "$port" -i "$dir/client_key" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$(id -un)@127.0.0.1" /bin/true 2>/dev/null; then
      echo "sshd-fixture: sshd on 127.0.0.1:$port (pid $(cat "$dir/sshd.pid"))"
      exit 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  stop
  if [ $attempt -ge 3 ]; then
    echo "sshd-fixture: error: sshd did not answer; its log:" >&2
    cat "$dir/sshd.log" >&2 || true
    exit 1
  fi
done
