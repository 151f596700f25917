package Txval::Files;

# A file's whole text, and a file written whole (the tests that read the
# repository's docs and examples and write configurations from them):
#
#   use Txval::Files qw(slurp spew);
#   my $text = slurp($file);      # dies when it cannot be read
#   spew($file, $text);           # dies when it cannot be written

use strict;
use warnings;

use Exporter qw(import);

our @EXPORT_OK = qw(slurp spew);


sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!\n";
    local $/;
    return scalar <$fh>;
}


sub spew {
    my ($f, $s) = @_;
    open my $fh, '>', $f or die "$f: $!\n";
    print $fh $s;
    close $fh;
}


1;
