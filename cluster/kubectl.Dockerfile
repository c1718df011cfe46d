# The image of the nightly CronJob's pod (cluster/k8s/cronjob-nightly.yaml): kubectl, a POSIX sh,
# sed, date and expr, nothing else. Built from two sources that do not withdraw releases: the Docker
# Official Image `alpine` and the kubectl binary the Kubernetes project publishes for every release
# on dl.k8s.io, checked against the SHA-256 published beside it.
#
#   docker build -f cluster/kubectl.Dockerfile -t ghcr.io/your-org/adabiobert-kubectl:1.31.4 cluster
#   docker run --rm ghcr.io/your-org/adabiobert-kubectl:1.31.4 version --client     # smoke test
#   docker push ghcr.io/your-org/adabiobert-kubectl:1.31.4
#
# Not built here (no docker on the machine that wrote it; tests/test_cluster_configs.py parses it).
# KUBECTL_VERSION: kubectl supports API servers one minor version older or newer than itself; pick
# the minor of your cluster, and keep the tag in the CronJob equal to it. Once you have built it,
# pinning KUBECTL_SHA256 (the published .sha256 of that version and architecture) makes the
# check independent of dl.k8s.io.
ARG ALPINE_IMAGE=docker.io/library/alpine:3.20
FROM ${ALPINE_IMAGE}

ARG KUBECTL_VERSION=v1.31.4
ARG KUBECTL_SHA256=""
# Set by BuildKit to the platform being built (amd64, arm64).
ARG TARGETARCH=amd64
# curl at build time only: the download as the Kubernetes docs show it (curl, then sha256sum -c).
RUN set -eux; \
    apk add --no-cache --virtual .fetch curl ca-certificates; \
    url="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl"; \
    curl -fsSL -o /usr/local/bin/kubectl "${url}"; \
    expected="${KUBECTL_SHA256:-$(curl -fsSL "${url}.sha256")}"; \
    echo "${expected}  /usr/local/bin/kubectl" | sha256sum -c -; \
    chmod 0755 /usr/local/bin/kubectl; \
    apk del .fetch; \
    kubectl version --client

# No root needed: the pod talks to the API server with its ServiceAccount token.
ENV HOME=/tmp
USER 65534:65534
ENTRYPOINT ["kubectl"]
