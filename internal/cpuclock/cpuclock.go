// Package cpuclock reads this process's CPU time: what benchmarks and the
// load generator report per share, since on a machine shared with other
// work wall time counts the time other processes ran.
package cpuclock
