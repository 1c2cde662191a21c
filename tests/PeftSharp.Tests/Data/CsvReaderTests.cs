using PeftSharp.Data;

namespace PeftSharp.Tests.Data;

/// <summary>CSV/TSV reading per RFC 4180: quoting, embedded delimiters, line breaks and quotes, line numbers, bad records.</summary>
public sealed class CsvReaderTests : IDisposable
{
    private readonly DataTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Quoted_fields_hold_commas_line_breaks_and_doubled_quotes()
    {
        var path = _files.Write("q.csv",
            "text,label\r\n" +
            "\"Good, very good\",1\r\n" +
            "\"He said \"\"wow\"\"\",1\r\n" +
            "\"two\nlines\",0\r\n" +
            "plain text with a \" inside,0\r\n" +
            "\"\",1");                               // empty quoted field, no final line break
        var data = DataReader.Read(path);
        Assert.Equal(DataFormat.Classification, data.Format);
        var rows = data.Examples.Cast<ClassificationExample>().ToList();
        Assert.Equal(["Good, very good", "He said \"wow\"", "two\nlines", "plain text with a \" inside", ""], rows.Select(r => r.Text));
        Assert.Equal([1, 1, 0, 0, 1], rows.Select(r => r.Label));
        // Lines: header 1, then 2, 3, 4 (the quoted line break makes line 5), 6, 7.
        Assert.Equal([2, 3, 4, 6, 7], rows.Select(r => r.Line));
        Assert.True(data.Labels!.Numeric);
    }

    [Fact]
    public void Crlf_inside_a_quoted_field_is_kept_and_counted_once()
    {
        var path = _files.Write("crlf.csv", "instruction,input,output\r\n\"a\r\nb\",,\"c\"\r\nx,y,z\r\n");
        var rows = DataReader.Read(path).Examples.Cast<InstructionExample>().ToList();
        Assert.Equal(new InstructionExample("a\r\nb", "", "c") { Line = 2 }, rows[0]);
        Assert.Equal(new InstructionExample("x", "y", "z") { Line = 4 }, rows[1]);
    }

    [Fact]
    public void Tsv_reads_sentence_pairs_with_renamed_columns_and_label_names()
    {
        // GLUE's RTE layout: index, sentence1, sentence2, label.
        var path = _files.Write("rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA cat sat.\tA cat, sitting.\tentailment\n1\tIt rains.\tIt is dry.\tnot_entailment\n");
        var options = new DataReadOptions { Columns = new DataColumns { Premise = "sentence1", Hypothesis = "sentence2" } };
        var data = DataReader.Read(path, options);
        Assert.Equal(DataFormat.SentencePair, data.Format);
        Assert.Equal(new ClassificationExample("A cat sat.", "A cat, sitting.", 0) { Line = 2 }, data.Examples[0]);
        Assert.Equal(new ClassificationExample("It rains.", "It is dry.", 1) { Line = 3 }, data.Examples[1]);
    }

    [Fact]
    public void Utf8_bom_and_empty_lines_are_ignored()
    {
        var path = _files.WriteBytes("bom.csv", [0xEF, 0xBB, 0xBF, .. "text\n\nhello\n\n\nworld\n"u8]);
        var data = DataReader.Read(path);
        Assert.Equal(DataFormat.Text, data.Format);
        Assert.Equal([new TextExample("hello") { Line = 3 }, new TextExample("world") { Line = 6 }], data.Examples);
    }

    [Theory]
    [InlineData("text,label\na,1\nb,1,extra\n", 3, "has 3 fields, the header has 2")]
    [InlineData("text,label\n\"a\"x,1\n", 2, "field 1: unexpected 'x' after the closing quote")]
    [InlineData("text,label\na,1\n\"never closed,1\nb,0\n", 3, "quoted field 1, opened on line 3, is not closed")]
    [InlineData("text,label\na,1\nb,\n", 3, "'label' is empty")]
    [InlineData("text,label\na,1\nb,pos\n", 3, "is a name but the file's labels are integers")]
    public void Bad_record_error_names_line(string content, int line, string fault)
    {
        var path = _files.Write("bad.csv", content);
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(path));
        Assert.Equal(line, e.Line);
        Assert.StartsWith($"{path}:{line}: ", e.Message);
        Assert.Contains(fault, e.Message);
    }

    [Fact]
    public void Skipping_bad_records_resumes_on_the_next_line()
    {
        var path = _files.Write("skip.csv", "text,label\na,1\n\"b\"junk,1\nc,0,0\nd,0\n");
        var data = DataReader.Read(path, new DataReadOptions { SkipBadRows = true });
        Assert.Equal(2, data.SkippedRows);
        Assert.Equal([("a", 2), ("d", 5)], data.Examples.Cast<ClassificationExample>().Select(e => (e.Text, e.Line)));
    }

    [Fact]
    public void Header_faults_are_errors_even_when_skipping()
    {
        var dup = _files.Write("dup.csv", "text,text\na,b\n");
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(dup, new DataReadOptions { SkipBadRows = true }));
        Assert.Equal($"{dup}:1: header: column 'text' appears twice", e.Message);
        var chat = _files.Write("chat.csv", "messages\nx\n");
        Assert.Contains("the chat format needs JSON Lines", Assert.Throws<DataFileException>(() => DataReader.Read(chat)).Message);
        var headerOnly = _files.Write("h.csv", "text,label\n");
        Assert.Equal($"{headerOnly}: no rows", Assert.Throws<DataFileException>(() => DataReader.Read(headerOnly)).Message);
    }
}
