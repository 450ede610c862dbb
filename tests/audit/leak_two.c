/* SPDX-License-Identifier: MIT */
/* Two leaks from two functions: "leak_two PATH". Prints "config N" and "log N". */
#include <fcntl.h>
#include <stdio.h>

int open_config(const char *path);
int open_log(const char *path);

int open_config(const char *path)
{
	return open(path, O_RDONLY | O_CLOEXEC);
}

int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	printf("config %d\n", open_config(argv[1]));
	printf("log %d\n", open_log(argv[1]));
	return 0;
}
