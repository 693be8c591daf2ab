#!/usr/bin/env bash
# Make sure the database servers the tests need are installed and running, with the
# credentials the tests use: MariaDB root@127.0.0.1 with an empty password, PostgreSQL
# postgres@127.0.0.1 with trust auth. Idempotent: does nothing when all is already there.
set -euo pipefail

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server mariadb-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
# the Galera lab (skylift.lab.galera_lab): the galera-4 provider, and rsync for its state transfer
[ -e /usr/lib/galera/libgalera_smm.so ] || need_apt+=(galera-4)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ] || need_apt+=(keepalived)
# Galera's arbitrator: the third vote of a two-MN HA cloud (skylift.lab.galera_lab)
command -v garbd >/dev/null 2>&1 || need_apt+=(galera-arbitrator-4)
# a real headless browser for the UI tests (tests/browser_kit.py): Debian's chromium and its
# chromedriver, since Selenium must never download a browser of its own
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "services: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# MariaDB
if ! mysqladmin -uroot -h127.0.0.1 ping >/dev/null 2>&1 && ! mysqladmin -uroot ping >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do mysqladmin -uroot ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
if ! mysql -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; then
  echo "services: granting root@127.0.0.1 for the tests"
  mysql -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
                   GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                   ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
                   FLUSH PRIVILEGES;"
fi
mysql -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null

# PostgreSQL
pgver=$(ls /etc/postgresql | sort -V | tail -n1)
if ! pg_isready -h 127.0.0.1 -q; then
  echo "services: starting PostgreSQL $pgver"
  pg_ctlcluster --skip-systemctl-redirect "$pgver" main start
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -q && break; sleep 0.5; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  echo "services: trusting local TCP connections to PostgreSQL for the tests"
  hba="/etc/postgresql/$pgver/main/pg_hba.conf"
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$pgver" main reload
  sleep 1
fi
psql -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null
echo "services: MariaDB and PostgreSQL ready"
