/* cli/datamesh_main.c — the datamesh binary's entry point. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return dm_cli_main(argc, argv);
}
