# The nightcrier daemon: the static binary of scripts/build-release.sh on a minimal Debian
# base, run as an unprivileged user. Built and smoke-tested by scripts/images.sh, which
# stages the build context (target/images/nightcrier/: the binary) and makes the base
# (`nightcrier-base`, Debian minbase from debootstrap plus tini and ca-certificates):
#
#   scripts/images.sh
#
# The base has a shell and coreutils because the daemon's children need them: the permission
# preflight runs kubectl, agents are scripts, and `nightcrier demo` runs its stub agent. For
# triage inside the container, use the agent-runner image (agent-runner.Dockerfile), which
# adds kubectl, Node.js and the agent CLIs to this one.
#
#   docker run --rm -v "$PWD/nightcrier.toml:/etc/nightcrier/nightcrier.toml:ro" \
#       -p 127.0.0.1:8080:8080 nightcrier:VERSION
#
# Paths: configuration /etc/nightcrier/nightcrier.toml (mount it; relative paths in it are
# taken from /etc/nightcrier); working directory and default workspace root
# /var/lib/nightcrier (./incidents; mount a volume there to keep incidents and
# pending.jsonl across restarts). Port 8080: health and metrics, when the configuration sets
# `[health] listen = "0.0.0.0:8080"` (the default, 127.0.0.1:8080, is unreachable from
# outside the container).
ARG BASE_IMAGE=nightcrier-base:bookworm
FROM ${BASE_IMAGE}

# A fixed uid, so volumes and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 nightcrier \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/nightcrier \
        --no-create-home --shell /usr/sbin/nologin nightcrier \
    && install -d -m 0750 -o nightcrier -g nightcrier /var/lib/nightcrier \
    && install -d -m 0755 /etc/nightcrier

COPY nightcrier /usr/local/bin/nightcrier

USER 10001:10001
WORKDIR /var/lib/nightcrier
ENV HOME=/var/lib/nightcrier
EXPOSE 8080
# tini is PID 1: it forwards SIGTERM to nightcrier and reaps what agents leave behind
# (nightcrier reaps only its own children).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/nightcrier"]
CMD ["run", "--config", "/etc/nightcrier/nightcrier.toml"]
