#!/usr/bin/perl
# Writes the package's machine-readable copyright file (DEP-5) from
# `cargo metadata` (read on standard input): novabmc's own paragraph, one
# paragraph per crate compiled into the binary (the normal dependencies
# reachable from novabmc on the target platform, with their licence
# expression and the copyright lines of their licence files), and one
# licence paragraph per licence named. A licence Debian ships in
# /usr/share/common-licenses is referred to; any other's text is taken
# from a crate's own licence file. A licence with no text found is an
# error, so a new dependency cannot slip in unaccounted for.
#
#   cargo metadata --format-version 1 --locked --filter-platform TRIPLE \
#       | perl contrib/deb/copyright.pl > debian/copyright
#
# Only Perl's core modules are used: dpkg-dev and debhelper need Perl
# anyway.
use strict;
use warnings;
use File::Basename qw(dirname);
use JSON::PP qw(decode_json);

binmode(STDOUT, ":encoding(UTF-8)");
my $meta = do { local $/; decode_json(<STDIN>) };
my %package = map { $_->{id} => $_ } @{ $meta->{packages} };
my %node = map { $_->{id} => $_ } @{ $meta->{resolve}{nodes} };
my %ours = map { $_ => 1 } @{ $meta->{workspace_members} };
my $root = $meta->{resolve}{root} or die "copyright.pl: cargo metadata names no root package\n";

# The crates in the binary: what the root reaches through normal
# dependencies (not dev- or build-dependencies).
my (%linked, @todo);
@todo = ($root);
while (defined(my $id = shift @todo)) {
    next if $linked{$id}++;
    for my $dep (@{ $node{$id}{deps} }) {
        push @todo, $dep->{pkg} if grep { !defined $_->{kind} } @{ $dep->{dep_kinds} };
    }
}
my @crates = sort { $a->{name} cmp $b->{name} or $a->{version} cmp $b->{version} }
    map { $package{$_} } grep { !$ours{$_} } keys %linked;

# SPDX expressions in DEP-5 syntax: lower-case operators, "/" (an old
# cargo spelling of OR) as "or", and "X WITH Y" as DEP-5's "X with Y
# exception".
sub dep5_license {
    my ($spdx) = @_;
    my $l = $spdx;
    $l =~ s{\s*/\s*}{ OR }g;
    $l =~ s/\s+WITH\s+(\S+?)(?:-exception)?(?=\)|\s|$)/ with $1 exception/g;
    $l =~ s/\bOR\b/or/g;
    $l =~ s/\bAND\b/and/g;
    return $l;
}
sub short_names {
    my ($dep5) = @_;
    (my $names = $dep5) =~ s/[()]//g;
    return grep { length } map { s/^\s+|\s+$//gr } split /\s+(?:or|and)\s+(?!exception)/, $names;
}

sub licence_files {
    my ($crate) = @_;
    my $dir = dirname($crate->{manifest_path});
    opendir(my $dh, $dir) or return ();
    my @files = sort grep { /^(?:licen[cs]e|copying|copyright|notice|unlicense)/i && -f "$dir/$_" } readdir $dh;
    return map { "$dir/$_" } @files;
}
sub read_text {
    my ($path) = @_;
    open(my $fh, '<:encoding(UTF-8)', $path) or die "copyright.pl: cannot read $path: $!\n";
    local $/;
    return scalar <$fh>;
}
my $notice = qr/^\s*Copyright\s*(?:\(c\)|©|[0-9])/i;

sub copyright_lines {
    my ($crate) = @_;
    my (%seen, @lines);
    for my $file (licence_files($crate)) {
        for (split /\n/, read_text($file)) {
            next unless /$notice/;
            next if /\[yyyy\]|\{yyyy\}|<year>/i;
            s/^\s*Copyright\s*(?:\(c\)|©)?\s*//i;
            s/\s+$//;
            push @lines, $_ if length && !$seen{$_}++;
        }
    }
    return @lines if @lines;
    my @authors = @{ $crate->{authors} // [] };
    return @authors if @authors;
    my $where = $crate->{repository} // "https://crates.io/crates/$crate->{name}";
    return ("the $crate->{name} authors (the crate names none; see $where)");
}

# A DEP-5 field's continuation lines: each indented by one space, blank
# lines as " .".
sub body {
    my ($text) = @_;
    $text =~ s/\r//g;
    $text =~ s/^\s*\n//;
    $text =~ s/\s+$//;
    return join("\n", map { length($_) ? " $_" : " ." } split /\n/, $text) . "\n";
}

print "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n";
print "Upstream-Name: novabmc\n";
print "Source: https://github.com/novabmc/novabmc\n";
print "Comment: Generated from cargo metadata by contrib/deb/copyright.pl.\n";
print " /usr/bin/novabmc is statically linked with the Rust crates listed below,\n";
print " built from their crates.io sources; vendor/NAME-VERSION stands for a\n";
print " crate's source as `cargo vendor --versioned-dirs` lays it out.\n\n";
print "Files: *\n";
print "Copyright: the novabmc developers\n";
print "License: Apache-2.0\n\n";

my %used = ('Apache-2.0' => 1);
my %users;    # short name => crates licensed so, for finding its text
for my $crate (@crates) {
    my $spdx = $crate->{license}
        or die "copyright.pl: crate $crate->{name} $crate->{version} declares no licence (license = \"...\")\n";
    my $licence = dep5_license($spdx);
    for my $name (short_names($licence)) {
        $used{$name} = 1;
        push @{ $users{$name} }, $crate;
    }
    my @lines = copyright_lines($crate);
    print "Files: vendor/$crate->{name}-$crate->{version}/*\n";
    print "Copyright: ", shift(@lines), "\n";
    print " $_\n" for @lines;
    print "License: $licence\n\n";
}

# Where a licence's text is when no common-licenses file has it: a file
# named after it (LICENSE-MIT, LICENSE-ZLIB.md, UNLICENSE...), or the
# LICENSE of a crate under that licence alone.
my %file_tag = (
    'BSL-1.0' => 'BOOST',
    'BSD-2-Clause' => 'BSD',
    'Unicode-3.0' => 'UNICODE',
    'Apache-2.0 with LLVM exception' => 'Apache-2.0_WITH_LLVM-exception',
);
sub licence_text {
    my ($name) = @_;
    my $tag = $file_tag{$name} // $name;
    for my $crate (@{ $users{$name} }) {
        for my $file (licence_files($crate)) {
            (my $base = $file) =~ s{.*/}{};
            $base =~ s/\.(?:md|txt)$//i;
            return read_text($file) if $base =~ /^(?:licen[cs]e[-_.])?\Q$tag\E$/i;
        }
    }
    for my $crate (@{ $users{$name} }) {
        next unless dep5_license($crate->{license}) eq $name;
        for my $file (licence_files($crate)) {
            return read_text($file) if $file =~ m{/(?:licen[cs]e|copying)(?:\.md|\.txt)?$}i;
        }
    }
    die "copyright.pl: no text found for licence $name (crates: "
        . join(', ', map { $_->{name} } @{ $users{$name} }) . ")\n";
}
for my $name (sort keys %used) {
    print "License: $name\n";
    if (-f "/usr/share/common-licenses/$name") {
        print " On Debian systems, the complete text of this licence is in\n";
        print " /usr/share/common-licenses/$name.\n\n";
        next;
    }
    # "X with Y exception" where Debian ships X: X referred to, and only the
    # exception's text (from its heading on) taken from the crate's file.
    if ($name =~ /^(\S+) with .* exception$/ && -f "/usr/share/common-licenses/$1") {
        my $base = $1;
        my ($exception) = licence_text($name) =~ /^(-*\s*\S.*\bexceptions?\b.*\n(?:.*\n?)*)/mi
            or die "copyright.pl: no exception text found for licence $name\n";
        print " On Debian systems, the complete text of the $base licence is in\n";
        print " /usr/share/common-licenses/$base. The exception:\n .\n";
        print body($exception), "\n";
        next;
    }
    # The copyright lines belong to the crate they came from, listed above.
    my $text = join "\n", grep { !/$notice/ } split /\n/, licence_text($name);
    print body($text), "\n";
}
