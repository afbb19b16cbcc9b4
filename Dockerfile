# tunneltop serve in a container: Cloudflare Tunnel metrics for Prometheus (see the README, "For a team").
#
#   docker build -t tunneltop .
#   docker run -d --name tunneltop -p 9877:9877 \
#     -e CLOUDFLARE_ACCOUNT_ID=... \
#     -v /etc/tunneltop/cloudflare-token:/run/secrets/cloudflare-token:ro \
#     -v /etc/tunneltop/serve-token:/run/secrets/serve-token:ro \
#     tunneltop --token-file /run/secrets/cloudflare-token --auth-token-file /run/secrets/serve-token
#
# Secrets come in as files (never as arguments, which every user of the host can read). It listens on all of the
# container's addresses; without --auth-token-file it says on stderr that the data is unauthenticated.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tunneltop ./tunneltop
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
COPY --from=build /install /usr/local
# An unprivileged user of its own; the request budget's ledger lives in its runtime directory.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin tunneltop \
    && install -d -o tunneltop -m 0700 /run/tunneltop
USER tunneltop
ENV XDG_RUNTIME_DIR=/run/tunneltop PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 9877
# The poller's own health (200 while polls succeed, else 503); /healthz needs no token.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9877/healthz', timeout=4).status != 200)"]
# docker stop sends SIGTERM: serve stops within a few seconds with exit status 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tunneltop", "serve", "--listen", "0.0.0.0:9877"]
