#include "tests/support/c_project.hpp"

#include <sys/stat.h>

#include "tests/support/temp_dir.hpp"

namespace hermetic::test {

std::vector<std::pair<std::string, std::string>> c_project(int files) {
    std::vector<std::pair<std::string, std::string>> f = {{"proj/", ""}, {"proj/src/", ""}};
    std::string objs, decls, calls;
    for (int i = 0; i < files; ++i) {
        std::string n = std::to_string(i);
        std::string body = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"common.h\"\n";
        for (int k = 0; k < 20; ++k)
            body += "static int g" + std::to_string(k) + "(int x) { char b[64]; snprintf(b, sizeof b, \"%d\", x * " +
                    std::to_string(k + i) + "); return (int)strlen(b) + COMMON; }\n";
        body += "int f" + n + "(int x) { int s = 0;";
        for (int k = 0; k < 20; ++k) body += " s += g" + std::to_string(k) + "(x + s);";
        body += " return s; }\n";
        f.push_back({"proj/src/m" + n + ".c", body});
        objs += " src/m" + n + ".o";
        decls += "int f" + n + "(int);\n";
        calls += "  s += f" + n + "(s);\n";
    }
    f.push_back({"proj/src/common.h", "#define COMMON 3\n"});
    f.push_back({"proj/src/main.c", "#include <stdio.h>\n" + decls + "int main(void) { int s = 1;\n" + calls +
                                        "  printf(\"%d\\n\", s); return 0; }\n"});
    f.push_back({"proj/Makefile", "OBJS =" + objs +
                                      " src/main.o\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\nsrc/%.o: src/%.c src/common.h\n\t$(CC) -O2 -c -o $@ $<\n"});
    return f;
}

void write_c_project(const std::string& dir, int files) {
    for (const auto& [path, content] : c_project(files)) {
        if (!path.empty() && path.back() == '/') ::mkdir((dir + "/" + path).c_str(), 0755);
        else write_file(dir + "/" + path, content);
    }
}

}  // namespace hermetic::test
