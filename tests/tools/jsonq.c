/* jsonq: print one value of a JSON file, for the end-to-end tests.
 *
 *   jsonq FILE PATH     PATH is dot-separated: keys, array indexes, or
 *                       "#" for the length of an array or object.
 * Strings print bare, numbers as %.17g, null/true/false as words, objects
 * and arrays as compact JSON. Exit 1 if the path is missing, 2 on bad input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: jsonq FILE PATH\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "jsonq: cannot open %s\n", argv[1]);
		return 2;
	}
	static char buf[64 << 20];
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	cJSON *root = cJSON_ParseWithLength(buf, len);
	if (!root) {
		fprintf(stderr, "jsonq: %s is not valid JSON\n", argv[1]);
		return 2;
	}
	const cJSON *cur = root;
	char path[1024];
	snprintf(path, sizeof path, "%s", argv[2]);
	char *save = NULL;
	for (char *k = strtok_r(path, ".", &save); k && cur; k = strtok_r(NULL, ".", &save)) {
		if (!strcmp(k, "#")) {
			printf("%d\n", cJSON_GetArraySize(cur));
			cJSON_Delete(root);
			return 0;
		}
		if (cJSON_IsArray(cur))
			cur = cJSON_GetArrayItem(cur, atoi(k));
		else
			cur = cJSON_GetObjectItemCaseSensitive(cur, k);
	}
	int rc = 0;
	if (!cur)
		rc = 1;
	else if (cJSON_IsString(cur))
		printf("%s\n", cur->valuestring);
	else if (cJSON_IsNumber(cur))
		printf("%.17g\n", cur->valuedouble);
	else {
		char *t = cJSON_PrintUnformatted(cur);
		printf("%s\n", t);
		cJSON_free(t);
	}
	cJSON_Delete(root);
	return rc;
}
