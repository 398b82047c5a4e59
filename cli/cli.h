/* SPDX-License-Identifier: MIT */
#ifndef BR_CLI_H
#define BR_CLI_H

/* Each subcommand: argv[0] is the subcommand's name. Returns the exit code. */
int br_cli_demo(int argc, char **argv);
int br_cli_bench(int argc, char **argv);

#endif
