# Sourced by the PostgreSQL benchmarks: starts the bench cluster (Debian's postgresql,
# fsync on, port 56543, data in the current directory) unless it runs already. Needs root
# (the server runs as the postgres user).
PG=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
if ! runuser -u postgres -- $PG/pg_ctl -D $PWD/pgdata status >/dev/null 2>&1; then
  touch pg.log && chown postgres pg.log
  if [ ! -d pgdata ]; then mkdir -p pgdata && chown postgres pgdata && runuser -u postgres -- $PG/initdb -D $PWD/pgdata --auth=trust -U kinship >/dev/null; fi
  runuser -u postgres -- $PG/pg_ctl -D $PWD/pgdata -l $PWD/pg.log -o "-p 56543 -k /tmp -c shared_buffers=1GB -c max_connections=200" start >/dev/null
  sleep 2
fi
