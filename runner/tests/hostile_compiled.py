"""The battery's cases for the compiled languages: the compiler is as hostile a surface as the program.

Each is a Case of test_hostile.py, checked the same three ways there. The compile stage runs in
the run's own sandbox, so what it can read, write and start is what the run can, and no more.
"""

from .battery import Case

FAILED_COMPILE = ("error", "timeout", "memory", "output_limit")

C_FLOOD = "#define T(x) x x x x x x x x x x\nint main(void) { T(T(T(T(1 = 1;)))) }\n"
CPP_TEMPLATE_BOMB = """
template <int N, typename T> struct Bomb {
    using Half = Bomb<N - 1, T>;
    using Left = Bomb<N - 1, typename Half::Pair>;
    struct Pair { Half a; Left b; };
    static constexpr long size = Half::size + Left::size;
};
template <typename T> struct Bomb<0, T> { using Pair = T; static constexpr long size = 1; };
int main() { return Bomb<40, int>::size > 0; }
"""
JAVA_THREADS = """
public class Main {
    public static void main(String[] args) throws Exception {
        int started = 0;
        try {
            for (int i = 0; i < 10000; i++) {
                Thread t = new Thread(() -> { try { Thread.sleep(60000); } catch (InterruptedException e) {} });
                t.setDaemon(true);
                t.start();
                started++;
            }
        } catch (OutOfMemoryError e) {
            System.out.println("stopped " + (started < 64));
        }
    }
}
"""
GO_THREADS = """
package main

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

func main() {
	runtime.GOMAXPROCS(4)
	for i := 0; i < 10000; i++ {
		go func() {
			runtime.LockOSThread()
			var ts = syscall.Timespec{Sec: 60}
			syscall.Nanosleep(&ts, nil)
		}()
	}
	time.Sleep(5 * time.Second)
	fmt.Println("survived")
}
"""

CASES = [
    # --- reading the host through the compiler ---
    Case(
        "C #include of a host file",
        "c",
        '#include "/etc/shadow"\n#include "%BASE%/playground/settings.py"\nint main(void) { return 0; }',
        status="compile_error",
        contains=("No such file or directory",),
        lacks=("SECRET_KEY",),
    ),
    Case(
        "C #include of a device",
        "c",
        '#include "/dev/zero"\nint main(void) { return 0; }',
        status="compile_error",
        compile_status=FAILED_COMPILE,
        compile_timeout=3000,
    ),
    Case(
        "C #include of the environment",
        "c",
        '#include "/proc/self/environ"\nint main(void) { return 0; }',
        status=("ok", "compile_error"),  # the sandbox's own, clean environment
        lacks=("canary-secret",),
    ),
    Case(
        "C .incbin of a host file",
        "c",
        '__asm__(".incbin \\"%BASE%/manage.py\\"");\nint main(void) { return 0; }',
        status="compile_error",
        lacks=("DJANGO_SETTINGS_MODULE",),
    ),
    Case(
        "C++ #include of a tools file",
        "cpp",
        '#include "%TOOLS%/../../etc/passwd"\nint main() {}',
        status="compile_error",
        lacks=("root:x:0",),
    ),
    Case(
        "Rust include_str! of a host file",
        "rust",
        'const S: &str = include_str!("%BASE%/manage.py");\nfn main() { println!("{}", S); }',
        status="compile_error",
        lacks=("DJANGO_SETTINGS_MODULE",),
    ),
    Case(
        "Rust include_bytes! of a device",
        "rust",
        'const B: &[u8] = include_bytes!("/dev/zero");\nfn main() { println!("{}", B.len()); }',
        status="compile_error",
        compile_status=FAILED_COMPILE,
        compile_timeout=3000,
    ),
    Case(
        "Go go:embed of a host file",
        "go",
        'package main\n\nimport _ "embed"\n\n//go:embed /etc/hostname\nvar s string\n\nfunc main() { println(s) }\n',
        status="compile_error",
    ),
    # --- bombs ---
    Case(
        "C include bomb",
        "c",
        "#ifndef DEPTH\n#define DEPTH\n#endif\n#include __FILE__\n#include __FILE__\nint main(void) { return 0; }",
        status="compile_error",
        compile_status=FAILED_COMPILE,
        compile_timeout=3000,
    ),
    Case(
        "C++ template bomb",
        "cpp",
        CPP_TEMPLATE_BOMB,
        status="compile_error",
        compile_status=FAILED_COMPILE,
        compile_timeout=3000,
    ),
    Case(
        "C enormous initialised array",
        "c",
        "char big[512 << 20] = {1};\nint main(void) { return big[0] - 1; }",
        status="compile_error",
        compile_status=FAILED_COMPILE,
    ),
    Case(
        "C enormous static array",
        "c",
        "static char big[1L << 40];\nint main(void) { big[0] = 1; return big[0] - 1; }",
        status=("ok", "compile_error", "memory", "error"),  # untouched pages cost nothing
    ),
    Case(
        "C compiler output flood",
        "c",
        C_FLOOD,
        status="compile_error",
        compile_status=("output_limit", "error"),
    ),
    Case(
        "C++ compiler output flood",
        "cpp",
        C_FLOOD.replace("(void)", "()"),
        status="compile_error",
        compile_status=("output_limit", "error"),
    ),
    # --- the program, once built ---
    Case(
        "C memory is the run's limit",
        "c",
        "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 20); if (!p) return 1; memset(p, 1, 1 << 20); } }",
        status="memory",
        memory=64,
    ),
    Case(
        "C timeout",
        "c",
        "int main(void) { for (;;) {} }",
        status="timeout",
        timeout=500,
    ),
    Case(
        "C fork bomb",
        "c",
        "#include <unistd.h>\nint main(void) { for (;;) fork(); }",
        status=("timeout", "error", "ok"),
        timeout=1000,
    ),
    Case(
        "C nothing of the compile is left",
        "c",
        '#include <dirent.h>\n#include <stdio.h>\n#include <ctype.h>\nint main(void) { DIR *d = opendir("/proc"); struct dirent *e; int n = 0;\n'
        'while ((e = readdir(d))) if (isdigit(e->d_name[0])) n++; printf("%d\\n", n); return 0; }',
        stdout="2\n",  # sandbox-init and the program
    ),
    Case(
        "C++ runtime error",
        "cpp",
        "#include <vector>\nint main() { std::vector<int> v; return v.at(3); }",
        status="error",
        signal="SIGABRT",
        contains=("std::out_of_range",),
    ),
    Case(
        "Rust memory is the run's limit",
        "rust",
        "fn main() { let mut v: Vec<Vec<u8>> = Vec::new(); loop { v.push(vec![1u8; 1 << 20]); } }",
        status="memory",
        memory=64,
    ),
    Case(
        "Rust timeout",
        "rust",
        "fn main() { loop { std::hint::spin_loop(); } }",
        status="timeout",
        timeout=500,
    ),
    Case(
        "Rust spawns a process",
        "rust",
        'fn main() { let o = std::process::Command::new("/usr/bin/id").arg("-u").output().unwrap();\n'
        'print!("{}", String::from_utf8_lossy(&o.stdout)); }',
        stdout="1000\n",
    ),
    Case(
        "Go spawns a process",
        "go",
        'package main\n\nimport (\n\t"fmt"\n\t"os/exec"\n)\n\nfunc main() {\n\tout, err := exec.Command("/usr/bin/id", "-u").Output()\n\tfmt.Print(string(out), err)\n}\n',
        stdout="1000\n<nil>",
    ),
    # The runtime dies when it can't make a thread, printing every goroutine's stack.
    Case("Go thread storm", "go", GO_THREADS, status=("error", "timeout", "output_limit"), timeout=3000),
    Case(
        "Go memory is the run's limit",
        "go",
        "package main\n\nfunc main() {\n\tvar keep [][]byte\n\tfor {\n\t\tb := make([]byte, 1<<20)\n\t\tfor i := range b {\n\t\t\tb[i] = 1\n\t\t}\n\t\tkeep = append(keep, b)\n\t}\n}\n",
        status=("memory", "error"),
        memory=64,
    ),
    Case(
        "Go timeout", "go", "package main\n\nfunc main() {\n\tfor {\n\t}\n}\n", status="timeout", timeout=500
    ),
    Case(
        "Java JNI loadLibrary",
        "java",
        'public class Main { public static void main(String[] a) { System.loadLibrary("evil"); } }',
        status="error",
        contains=("UnsatisfiedLinkError",),
    ),
    Case(
        "Java spawns a process",
        "java",
        "public class Main { public static void main(String[] a) throws Exception {\n"
        'Process p = new ProcessBuilder("/usr/bin/id", "-u").start();\n'
        "System.out.print(new String(p.getInputStream().readAllBytes())); } }",
        stdout="1000\n",
        timeout=5000,
    ),
    Case("Java thread storm", "java", JAVA_THREADS, stdout="stopped true\n", timeout=5000),
    Case(
        "Java memory is the run's limit",
        "java",
        "import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
        "List<long[]> keep = new ArrayList<>(); for (;;) keep.add(new long[1 << 17]); } }",
        status="error",
        contains=("java.lang.OutOfMemoryError",),
        timeout=5000,
    ),
    Case(
        "Java timeout",
        "java",
        "public class Main { public static void main(String[] a) { for (;;) {} } }",
        status="timeout",
        timeout=1500,
    ),
]
