#!/bin/sh
# make fuzz: build libkw with clang (ASan+UBSan+fuzzer instrumentation) and run each
# libFuzzer target for $1 seconds. $2: optional list of target names (default: all).
set -eu
secs=$1 only=$2
O=build/fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CLANG_OK="-Wno-unknown-warning-option"
make --no-print-directory O=$O CC=clang ARCH=$(uname -m | sed s/aarch64/arm64/) CROSS_COMPILE= host_defconfig
make --no-print-directory O=$O CC=clang CROSS_COMPILE= \
    EXTRA_CFLAGS="$SAN $CLANG_OK -fsanitize=fuzzer-no-link" EXTRA_LDFLAGS="$SAN" "$O/libkw.a"
libs=$(make --no-print-directory -s O=$O CC=clang CROSS_COMPILE= print-ldlibs | tail -n 1)  # kconfig may print a line first
mkdir -p $O/artifacts
status=0
for src in tools/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c); name=${name#fuzz_}
    if [ -n "$only" ]; then case " $only " in *" $name "*) ;; *) continue ;; esac; fi
    bin=$O/fuzz_$name
    clang -g -O1 $SAN -fsanitize=fuzzer -D_GNU_SOURCE -Iinclude -I$O/include -I$O/proto \
        -include $O/include/generated/autoconf.h -o "$bin" "$src" $O/libkw.a $libs
    corpus=$O/corpus/$name
    mkdir -p "$corpus"
    [ -d tools/fuzz/corpus/$name ] && cp -n tools/fuzz/corpus/$name/* "$corpus"/ 2>/dev/null || true
    echo "==== fuzz_$name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix=$O/artifacts/$name- \
        "$corpus" 2>$O/fuzz_$name.log; then
        tail -40 $O/fuzz_$name.log; status=1
        echo "fuzz_$name FAILED: reproduce with $bin $O/artifacts/$name-*"
    else
        grep -E 'stat::number_of_executed_units|Done' $O/fuzz_$name.log | tail -2
        echo "fuzz_$name: clean"
    fi
done
exit $status
