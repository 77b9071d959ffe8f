package main

func cmdBench(args []string) error { return nil }
