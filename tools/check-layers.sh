#!/bin/sh
# Proves the module layering from the object files: every kw_/KW_ symbol an object leaves
# undefined must be defined by an object in the same folder or in a folder the layering table
# lets it use, and no two folders may use each other (directly or through others), whatever
# the table says. An object whose folder the table does not name fails too, so a new folder
# has to take its place in the picture before it builds into the node.
#
#   check-layers.sh [-t table] <build dir> [object ...]
#
# Objects default to every *.o under <build dir> except tests/ and tools/; the Makefile passes
# its own list instead, so objects left behind by a moved or disabled source are not checked.
# The table (default: layers.txt beside this script) has one line per folder:
#   <folder> [<folder> ...]: <folders it may use>      '*' on the right: every folder
#   *: <folders>                                        folders every folder may use
# An object belongs to the longest folder in the table that is a prefix of its path, so a
# folder's subfolders share its line unless they have their own. Folders named in the table
# need not exist. $NM (default nm) reads the symbols: use the cross toolchain's for arm64.
set -eu

me=check-layers
table=$(dirname "$0")/layers.txt
while getopts t: opt; do
    case $opt in
    t) table=$OPTARG ;;
    *) echo "usage: $0 [-t table] <build dir> [object ...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-t table] <build dir> [object ...]" >&2; exit 2; }
dir=${1%/}
shift
NM=${NM:-nm}
[ -f "$table" ] || { echo "$me: error: no layering table $table" >&2; exit 2; }
[ -d "$dir" ] || { echo "$me: error: no build directory $dir (build first)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One object path per line, relative to the build dir.
if [ $# -eq 0 ]; then
    (cd "$dir" && find . -name '*.o' -not -path './tests/*' -not -path './tools/*' | sed 's|^\./||' | LC_ALL=C sort) > "$tmp/objs"
else
    for o in "$@"; do
        case $o in
        "$dir"/*) ;;
        *) echo "$me: error: $o is not under $dir" >&2; exit 2 ;;
        esac
        [ -f "$o" ] || { echo "$me: error: $o does not exist (build first)" >&2; exit 2; }
        echo "${o#"$dir"/}"
    done | LC_ALL=C sort -u > "$tmp/objs"
fi
[ -s "$tmp/objs" ] || { echo "$me: error: no objects under $dir (build first)" >&2; exit 2; }
if grep -q '[[:space:]:]' "$tmp/objs"; then
    echo "$me: error: object paths with blanks or colons are not supported" >&2; exit 2
fi

# Symbols as "U|D <object> <symbol>": undefined (weak too) and defined globals.
(
    cd "$dir"
    # shellcheck disable=SC2046 # one word per object, checked above
    "$NM" -A -u $(cat "$tmp/objs") > "$tmp/nm-u"
    # shellcheck disable=SC2046
    "$NM" -A -g --defined-only $(cat "$tmp/objs") > "$tmp/nm-d"
) 2> "$tmp/nm-err" || { cat "$tmp/nm-err" >&2; echo "$me: error: $NM failed" >&2; exit 2; }
awk -v kind=U '{ o = $0; sub(/:.*/, "", o); if ($NF ~ /^(kw_|KW_)/) print kind, o, $NF }' "$tmp/nm-u" > "$tmp/syms"
awk -v kind=D '{ o = $0; sub(/:.*/, "", o); if ($NF ~ /^(kw_|KW_)/) print kind, o, $NF }' "$tmp/nm-d" >> "$tmp/syms"

awk -v table="$table" -v me="$me" '
function layer_of(path,   d) {
    d = path
    if (sub(/\/[^\/]*$/, "", d) == 0) return ""        # object at the top of the build dir
    while (d != "") {
        if (d in allow) return d
        if (sub(/\/[^\/]*$/, "", d) == 0) return ""
    }
    return ""
}
function may_use(a, b) {
    return a == b || (b in pub) || allow[a] == "*" || index(" " allow[a] " ", " " b " ") > 0
}
function uses_of(a,   s) {
    s = allow[a] == "*" ? "every folder" : allow[a]
    if (pubs != "") s = s (s == "" ? "" : " ") pubs
    return s == "" ? "nothing" : s
}
# Depth-first search over the folder graph; a grey successor closes a cycle.
function dfs(u, depth,   v, i, k, c, start, key, best) {
    color[u] = 1; stack[depth] = u
    for (k = 1; k <= nsucc[u]; k++) {
        v = succ[u, k]
        if (color[v] == 1) {
            for (i = depth; i >= 1 && stack[i] != v; i--) ;
            start = i; best = start
            for (i = start; i <= depth; i++) if (stack[i] < stack[best]) best = i
            c = ""
            for (i = best; i <= depth; i++) c = c stack[i] " -> "
            for (i = start; i < best; i++) c = c stack[i] " -> "
            c = c stack[best]
            if (!(c in cycles)) { cycles[c] = 1; ncycles++; cyclist[ncycles] = c }
        } else if (color[v] == 0) {
            dfs(v, depth + 1)
        }
    }
    color[u] = 2
}
BEGIN {
    n = 0
    while ((getline line < table) > 0) {
        n++
        sub(/#.*/, "", line)
        if (line ~ /^[ \t]*$/) continue
        if (index(line, ":") == 0) { printf "%s: error: %s:%d: no colon (folder: folders it may use)\n", me, table, n; bad = 1; continue }
        left = substr(line, 1, index(line, ":") - 1); right = substr(line, index(line, ":") + 1)
        gsub(/[ \t]+/, " ", right); sub(/^ /, "", right); sub(/ $/, "", right)
        nl = split(left, lw, /[ \t]+/)
        for (i = 1; i <= nl; i++) {
            if (lw[i] == "") continue
            if (lw[i] == "*") { np = split(right, pw, " "); for (j = 1; j <= np; j++) { pub[pw[j]] = 1; pubs = pubs (pubs == "" ? "" : " ") pw[j] } ; continue }
            f = lw[i]; sub(/\/+$/, "", f)
            if (f in allow) { printf "%s: error: %s:%d: %s is listed twice\n", me, table, n, f; bad = 1 }
            allow[f] = right; tline[f] = n
        }
    }
    close(table)
    for (f in allow) {
        nr = split(allow[f], rw, " ")
        for (j = 1; j <= nr; j++)
            if (rw[j] != "*" && !(rw[j] in allow)) { printf "%s: error: %s:%d: %s may use %s, which has no line of its own\n", me, table, tline[f], f, rw[j]; bad = 1 }
    }
    for (p in pub) if (!(p in allow)) { printf "%s: error: %s: every folder may use %s, which has no line of its own\n", me, table, p; bad = 1 }
    if (bad) exit 2
}
FILENAME ~ /objs$/ {
    nobj++
    L = layer_of($1)
    if (L == "") {
        d = $1; if (sub(/\/[^\/]*$/, "", d) == 0) d = "."
        printf "error: %s: folder %s is not in the layering table %s\n", $1, d, table
        nerr++; next
    }
    layer[$1] = L; folders[L] = 1
    next
}
$1 == "D" { if (!($3 in def)) def[$3] = $2; else if (index(" " def[$3] " ", " " $2 " ") == 0) def[$3] = def[$3] " " $2; next }
$1 == "U" { nu++; ufrom[nu] = $2; usym[nu] = $3; next }
END {
    if (bad) exit 2
    for (i = 1; i <= nu; i++) {
        o = ufrom[i]; s = usym[i]
        if (!(o in layer)) continue                    # already reported: unknown folder
        a = layer[o]
        if (!(s in def)) continue                      # defined outside these objects (tests, the linker)
        nd = split(def[s], dw, " ")
        ok = ""; b = ""
        for (j = 1; j <= nd; j++) {
            if (!(dw[j] in layer)) continue
            if (may_use(a, layer[dw[j]])) { ok = dw[j]; break }
            if (b == "") b = dw[j]
        }
        if (ok == "" && b == "") continue              # defined only in objects of unknown folders
        if (ok != "") { b = ok }
        lb = layer[b]
        if (lb == a) continue
        nrefs++
        if (!((a, lb) in edge)) { edge[a, lb] = 1; nedges++; nsucc[a]++; succ[a, nsucc[a]] = lb; nodes[a] = 1; nodes[lb] = 1 }
        if (ok == "") {
            printf "error: %s uses %s defined in %s: %s may not use %s (%s may use: %s)\n", o, s, b, a, lb, a, uses_of(a)
            nerr++
        }
    }
    for (u in nodes) if (color[u] == 0) dfs(u, 1)
    for (i = 1; i <= ncycles; i++) {
        printf "error: folders use each other: %s\n", cyclist[i]
        nerr++
    }
    nfold = 0; for (f in folders) nfold++
    if (nerr > 0) {
        printf "%s: %d error(s) in %d objects (table: %s)\n", me, nerr, nobj, table
        exit 1
    }
    printf "%s: %d objects in %d folders, %d edges between folders (%d symbol uses), all downward, no cycles\n", me, nobj, nfold, nedges, nrefs
}
' "$tmp/objs" "$tmp/syms"
