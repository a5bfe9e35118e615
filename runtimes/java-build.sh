#!/bin/sh
# java-build.sh: Java's compile stage, inside the sandbox. The main file may hold a public
# class of any name: javac wants the file named after it, so Main.java is renamed first. Every
# .java file compiles together into .build/, and the class to run (its package's name
# included) goes in .build/main.args, the java launcher's argument file. The flags given are
# javac's (the request's compilerOptions, already checked against the allow-list).
set -eu
main=Main.java
decl='^[[:space:]]*public[[:space:]]\+\([a-z]\+[[:space:]]\+\)*\(class\|record\|enum\|interface\)[[:space:]]\+\([A-Za-z_$][A-Za-z0-9_$]*\).*'
class=$(sed -n "s/$decl/\3/p" "$main" | head -n 1)
if [ -z "$class" ]; then
  # No public class: the first one that declares main, else Main.
  class=$(awk '{ for (i = 1; i < NF; i++) if ($i == "class") { c = $(i + 1); sub(/[^A-Za-z0-9_$].*/, "", c) } }
    /static.*void[ \t]+main[ \t]*\(/ { print c; exit }' "$main")
  class=${class:-Main}
elif [ "$class" != Main ]; then
  if [ -e "$class.java" ]; then
    echo "java-build.sh: $main holds public class $class, but $class.java is given too" >&2
    exit 1
  fi
  mv "$main" "$class.java"
  main=$class.java
fi
package=$(sed -n 's/^[[:space:]]*package[[:space:]]\+\([A-Za-z0-9_.]\+\)[[:space:]]*;.*/\1/p' "$main" | head -n 1)
mkdir -p .build
printf -- '-cp /tmp/.build %s\n' "${package:+$package.}$class" > .build/main.args
exec /usr/bin/javac "$@" -d .build $(find * -name '*.java' | sort)
