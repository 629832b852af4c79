#!/usr/bin/env bash
# Test infrastructure: fetch OpenSearch 2.19.6 (server + the five modules the tests need) from
# Maven Central into .cache/m2 and compile the tiny launcher in .ci/opensearch/ into
# .cache/opensearch/target. tests/opensearchnode.py starts the node from that output.
# Idempotent: a second run with unchanged sources does nothing (and needs no network).
# Needs Java 17 (javac) and Maven. Never part of the installed product.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/.cache/opensearch/target"
stamp="$out/.built-$(cat .ci/opensearch/pom.xml .ci/opensearch/src/main/java/newsmon/testnode/*.java | sha256sum | cut -c1-12)"
if [ -f "$stamp" ] && [ -s "$out/classpath.txt" ]; then
    echo "opensearch.sh: test node already built ($out)"
    exit 0
fi
if ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven
    fi
fi
for tool in java javac mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "opensearch.sh: '$tool' not found; install a JDK 17 and Maven (Debian: apt-get install openjdk-17-jdk-headless maven)" >&2
        exit 1
    fi
done
mkdir -p "$root/.cache/m2"
mvn -B -q -Dmaven.repo.local="$root/.cache/m2" -f .ci/opensearch/pom.xml \
    compile dependency:build-classpath -Dmdep.outputFile="$out/classpath.txt"
rm -f "$out"/.built-*
touch "$stamp"
echo "opensearch.sh: test node built ($out)"
