# shellcheck shell=bash
# bench/run's charts: SVG files drawn with gnuplot from the benchmarks'
# printed lines (the figures in RESULTS.md are the ones charted):
#   rulecount.svg  a new flow's cost against the number of rules, mseg and
#                  nftables (bench/rulecount.sh)
#   connrate.svg   connections per second per filter, IPv4 and IPv6
#                  (bench/connrate.sh)

# chart_rulecount LOG SVG: 0 if drawn, 1 if LOG has no rulecount lines.
chart_rulecount() {
  local data
  data=$(awk '$1 == "rulecount:" && $3 == "rules" {
    gsub(/\+/, ""); print $2, $6, $13, $16 }' "$1")
  [[ -n ${data} ]] || return 1
  gnuplot <<EOF
set terminal svg size 800,480 dynamic font "sans,13"
set output "$2"
set title "A new flow's cost against the number of rules (bench/rulecount.sh, IPv4)"
set xlabel "rules in the policy"
set ylabel "ns per packet of a new flow"
set logscale x
set format x "10^{%L}"
set xrange [5:200000]
set yrange [0:*]
set key left top
set grid ytics
\$d << END
${data}
END
plot \$d using 1:4 with linespoints lw 2 pt 7 title "nftables + conntrack, through the stack", \
     \$d using 1:3 with linespoints lw 2 pt 5 title "mseg, through the stack", \
     \$d using 1:2 with linespoints lw 2 pt 9 dt 2 title "mseg, BPF\\\\_PROG\\\\_TEST\\\\_RUN"
EOF
}

# chart_connrate LOG SVG: 0 if drawn, 1 if LOG has no connrate lines.
chart_connrate() {
  local data
  data=$(awk '$1 == "connrate:" && $2 ~ /^IPv[46]$/ && $5 == "conn/s" {
      if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 }
      v[$3, $2] = $4; r[$3, $2] = $6; gsub(/[(),]/, "", r[$3, $2])
    }
    END {
      for (i = 1; i <= n; i++) {
        f = order[i]
        printf "%s %s %s %s %s\n", f, v[f, "IPv4"], v[f, "IPv6"], r[f, "IPv4"], r[f, "IPv6"]
      }
    }' "$1")
  [[ -n ${data} ]] || return 1
  gnuplot <<EOF
set terminal svg size 800,480 dynamic font "sans,13"
set output "$2"
set title "Short connections per second through the router (bench/connrate.sh, wrk + nginx)\nbars: median conn/s of the rounds; labels: median of the rounds' ratios to none"
set ylabel "connections per second (median of the rounds)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set key right top
set grid ytics
\$d << END
${data}
END
plot \$d using 2:xtic(1) title "IPv4", \
     '' using 3 title "IPv6", \
     '' using (\$0 - 0.17):2:4 with labels offset 0,0.7 notitle, \
     '' using (\$0 + 0.17):3:5 with labels offset 0,0.7 notitle
EOF
}

# bench_charts LOG DIR: draw every chart LOG has the figures for into DIR;
# prints what it drew or skipped.
bench_charts() {
  local log=$1 dir=$2 name
  if ! command -v gnuplot >/dev/null; then
    echo "bench: charts skipped: gnuplot missing (apt-get install gnuplot-nox, or scripts/mseg-deps)"
    return 0
  fi
  mkdir -p "${dir}"
  for name in rulecount connrate; do
    if "chart_${name}" "${log}" "${dir}/${name}.svg"; then
      echo "bench: chart bench/${dir##*/}/${name}.svg"
    else
      # an old chart would show another run's figures beside this one's
      rm -f "${dir}/${name}.svg"
      echo "bench: chart ${name}.svg skipped (and removed): no ${name}.sh figures in this run"
    fi
  done
}
