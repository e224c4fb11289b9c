# Shared by the server scripts in this folder: the class path of a Java server from Maven Central.
#
# `classpath POM` resolves the POM's dependencies into the local Maven repository (~/.m2, which CI
# keeps between runs) once, and caches the class path under ${C360_SERVER_CACHE:-~/.cache/c360/servers},
# keyed by the POM's hash; later calls reuse it while every jar on it still exists.

server_cache() {
    local cache=${C360_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/c360/servers}
    mkdir -p "$cache" && echo "$cache"
}

classpath() {
    local pom=$1 cache key file jar ok=1
    cache=$(server_cache)
    key=$(sha256sum "$pom" | cut -c1-16)
    file="$cache/$(basename "$pom" .xml)-$key.classpath"
    if [[ -s "$file" ]]; then
        while IFS= read -r -d: jar; do [[ -f "$jar" ]] || { ok=0; break; }; done < <(cat "$file"; echo -n :)
        if [[ $ok -eq 1 ]]; then cat "$file"; return 0; fi
    fi
    echo "$(basename "$pom" .xml): resolving the jars from Maven Central (once; cached in ~/.m2)" >&2
    mvn -q -B -f "$pom" dependency:build-classpath -Dmdep.outputFile="$file.tmp" >&2 \
        || { echo "mvn could not resolve $pom" >&2; return 1; }
    mv "$file.tmp" "$file"
    cat "$file"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port HOST PORT SECONDS PID: until something listens, the process PID died, or time ran out.
wait_port() {
    local host=$1 port=$2 seconds=$3 pid=$4 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 2
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
