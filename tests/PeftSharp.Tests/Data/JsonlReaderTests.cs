using PeftSharp.Data;

namespace PeftSharp.Tests.Data;

/// <summary>JSON Lines reading: the real data sets' shapes and counts (from their READMEs), and malformed files.</summary>
public sealed class JsonlReaderTests : IDisposable
{
    private readonly DataTestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Sentiment_sentences_read_as_integer_classification_with_README_counts()
    {
        var train = DataReader.Read(DataTestFiles.Shared("sentiment_sentences", "train.jsonl"));
        Assert.Equal(DataFormat.Classification, train.Format);
        Assert.Equal(2400, train.Count);
        Assert.Equal(0, train.SkippedRows);
        Assert.Equal(new ClassLabels(["0", "1"], true).Names, train.Labels!.Names);
        Assert.True(train.Labels.Numeric);
        var rows = train.Examples.Cast<ClassificationExample>().ToList();
        Assert.Equal(1200, rows.Count(r => r.Label == 0));
        Assert.Equal(1200, rows.Count(r => r.Label == 1));
        Assert.Equal(new ClassificationExample("So there is no way for me to plug it in here in the US unless I go by a converter.", null, 0) { Line = 1 }, rows[0]);
        Assert.Equal(2, rows[1].Line);
        Assert.Null(rows[0].TextPair);
    }

    [Fact]
    public void Sst2_train_and_validation_have_README_label_counts()
    {
        var both = DataSplits.FromFiles(DataTestFiles.Shared("sst2", "train.jsonl"), DataTestFiles.Shared("sst2", "validation.jsonl"));
        int Count(Dataset d, int label) => d.Examples.Cast<ClassificationExample>().Count(e => e.Label == label);
        Assert.Equal((5000, 2211, 2789), (both.Train.Count, Count(both.Train, 0), Count(both.Train, 1)));
        Assert.Equal((872, 428, 444), (both.Validation!.Count, Count(both.Validation, 0), Count(both.Validation, 1)));
        Assert.Equal("it 's a charming and often affecting journey .", ((ClassificationExample)both.Validation.Examples[0]).Text);
    }

    [Fact]
    public void Rte_reads_as_sentence_pairs_with_named_labels_in_GLUE_order()
    {
        var both = DataSplits.FromFiles(DataTestFiles.Shared("rte", "train.jsonl"), DataTestFiles.Shared("rte", "validation.jsonl"));
        Assert.Equal(DataFormat.SentencePair, both.Train.Format);
        // GLUE's ClassLabel for RTE: entailment = 0, not_entailment = 1.
        Assert.Equal(["entailment", "not_entailment"], both.Labels!.Names);
        Assert.False(both.Labels.Numeric);
        var first = (ClassificationExample)both.Train.Examples[0];
        Assert.Equal("No Weapons of Mass Destruction Found in Iraq Yet.", first.Text);
        Assert.Equal("Weapons of Mass Destruction Found in Iraq.", first.TextPair);
        Assert.Equal(1, first.Label);
        int Count(Dataset d, int label) => d.Examples.Cast<ClassificationExample>().Count(e => e.Label == label);
        Assert.Equal((2490, 1249, 1241), (both.Train.Count, Count(both.Train, 0), Count(both.Train, 1)));
        Assert.Equal((277, 146, 131), (both.Validation!.Count, Count(both.Validation, 0), Count(both.Validation, 1)));
        Assert.Equal(both.Labels, both.Validation.Labels);
    }

    [Fact]
    public void Alpaca_libre_reads_as_instructions_with_optional_input()
    {
        var train = DataReader.Read(DataTestFiles.Shared("alpaca_libre", "train.jsonl"));
        var validation = DataReader.Read(DataTestFiles.Shared("alpaca_libre", "validation.jsonl"));
        Assert.Equal(DataFormat.Instruction, train.Format);
        Assert.Equal((2794, 300), (train.Count, validation.Count));
        Assert.Null(train.Labels);
        var rows = train.Examples.Cast<InstructionExample>().Concat(validation.Examples.Cast<InstructionExample>()).ToList();
        // README: 1497 of the 3094 examples have a non-empty input.
        Assert.Equal(1497, rows.Count(r => r.Input.Length > 0));
        Assert.Equal(new InstructionExample("Create a palindrome sentence.", "", "A man, a plan, a canal, Panama!") { Line = 1 }, rows[0]);
        Assert.Equal("I seen the movie last night at the theater.", rows[1].Input);
    }

    [Fact]
    public void Gsm8k_reads_question_and_answer_as_instruction_without_input()
    {
        var train = DataReader.Read(DataTestFiles.Shared("gsm8k", "train.jsonl"));
        Assert.Equal(DataFormat.QuestionAnswer, train.Format);
        Assert.Equal(2000, train.Count);
        var first = (InstructionExample)train.Examples[0];
        Assert.StartsWith("Weng earns $12 an hour for babysitting.", first.Instruction);
        Assert.Equal("", first.Input);
        Assert.EndsWith("\n#### 10", first.Output);
    }

    [Fact]
    public void Tinystories_reads_as_plain_text()
    {
        var data = DataReader.Read(DataTestFiles.Shared("tinystories", "validation.jsonl"));
        Assert.Equal(DataFormat.Text, data.Format);
        Assert.Equal(4300, data.Count);
        var texts = data.Examples.Cast<TextExample>().ToList();
        Assert.StartsWith("Spot. Spot saw the shiny car", texts[0].Text);
        // README: 713 paragraphs begin with "Once upon a time".
        Assert.Equal(713, texts.Count(t => t.Text.StartsWith("Once upon a time", StringComparison.Ordinal)));
    }

    [Fact]
    public void Chat_rows_read_as_messages()
    {
        var path = _files.Write("chat.jsonl",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n");
        var data = DataReader.Read(path);
        Assert.Equal(DataFormat.Chat, data.Format);
        var chat = (ChatExample)data.Examples[0];
        Assert.Equal([new ChatTurn("system", "Be brief."), new ChatTurn("user", "Hi"), new ChatTurn("assistant", "Hello!")], chat.Messages);
    }

    [Fact]
    public void Bad_json_line_error_names_file_and_line()
    {
        var path = _files.Write("bad.jsonl", "{\"text\": \"a\", \"label\": 0}\n\n{\"text\": \"b\", \"label\": 1\n{\"text\": \"c\", \"label\": 0}\n");
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(path));
        Assert.Equal(3, e.Line);
        Assert.Equal(path, e.FilePath);
        Assert.StartsWith($"{path}:3: invalid JSON", e.Message);
    }

    [Fact]
    public void Skipping_bad_rows_counts_them_and_keeps_the_rest()
    {
        var path = _files.Write("bad.jsonl",
            "{\"text\": \"a\", \"label\": 0}\n" +
            "{\"text\": \"b\", \"label\": 1\n" +          // line 2: invalid JSON
            "{\"text\": \"c\"}\n" +                        // line 3: no label
            "[1, 2]\n" +                                   // line 4: not an object
            "{\"text\": 5, \"label\": 1}\n" +              // line 5: text not a string
            "{\"text\": \"d\", \"label\": -1}\n" +         // line 6: negative label
            "{\"text\": \"e\", \"label\": 1}\n");
        var data = DataReader.Read(path, new DataReadOptions { SkipBadRows = true });
        Assert.Equal(5, data.SkippedRows);
        Assert.Equal([1, 7], data.Examples.Select(e => e.Line));
        Assert.Equal([2, 3, 4, 5, 6], data.SkippedReasons.Select(r => int.Parse(r[(path.Length + 1)..r.IndexOf(':', path.Length + 1)])));
        Assert.Contains("missing field 'label'", data.SkippedReasons[1]);
        Assert.Contains("must be a JSON object", data.SkippedReasons[2]);
        Assert.Contains("'text' must be a string", data.SkippedReasons[3]);
    }

    [Theory]
    [InlineData("{\"instruction\": \"x\", \"output\": \"y\"}\n{\"instruction\": \"x\"}\n", 2, "missing field 'output'")]
    [InlineData("{\"instruction\": \"x\", \"output\": \"y\"}\n{\"instruction\": \"x\", \"output\": [1]}\n", 2, "'output' must be a string")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n{\"messages\": [{\"role\": \"user\"}]}\n", 2, "messages[0] must be")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n{\"messages\": []}\n", 2, "non-empty list")]
    [InlineData("{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": \"pos\"}\n", 2, "is a name but the file's labels are integers")]
    [InlineData("{\"text\": \"a\", \"label\": 1.5}\n", 1, "class id (integer ≥ 0)")]
    [InlineData("{\"foo\": 1}\n", 1, "cannot tell the format from the fields [foo]")]
    [InlineData("[{\"text\": \"a\"}]\n", 1, "a JSON array file is not JSON Lines")]
    public void Malformed_row_error_names_line_and_fault(string content, int line, string fault)
    {
        var path = _files.Write("bad.jsonl", content);
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(path));
        Assert.Equal(line, e.Line);
        Assert.Contains(fault, e.Message);
        Assert.StartsWith($"{path}:{line}: ", e.Message);
    }

    [Fact]
    public void Empty_missing_and_unknown_files_are_errors_naming_the_file()
    {
        var empty = _files.Write("empty.jsonl", "\n  \n");
        Assert.Equal($"{empty}: no rows", Assert.Throws<DataFileException>(() => DataReader.Read(empty)).Message);
        var missing = Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid().ToString("N") + ".jsonl");
        Assert.Contains("file not found", Assert.Throws<DataFileException>(() => DataReader.Read(missing)).Message);
        var parquet = _files.Write("data.parquet", "x");
        Assert.Contains("unknown data file extension '.parquet'", Assert.Throws<DataFileException>(() => DataReader.Read(parquet)).Message);
        var allBad = _files.Write("allbad.jsonl", "{\n{\n");
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(allBad, new DataReadOptions { SkipBadRows = true }));
        Assert.Contains("all 2 rows are bad", e.Message);
    }

    [Fact]
    public void Invalid_utf8_is_an_error_naming_the_file()
    {
        var path = _files.WriteBytes("latin1.jsonl", [.. "{\"text\": \"caf"u8, 0xE9, .. "\"}\n"u8]);
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(path));
        Assert.Contains("not valid UTF-8", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void Column_names_can_be_overridden()
    {
        var path = _files.Write("glue.jsonl", "{\"sentence1\": \"A man sleeps.\", \"sentence2\": \"A man is awake.\", \"gold\": \"contradiction\"}\n");
        var options = new DataReadOptions { Columns = new DataColumns { Premise = "sentence1", Hypothesis = "sentence2", Label = "gold" } };
        var data = DataReader.Read(path, options);
        Assert.Equal(DataFormat.SentencePair, data.Format);
        Assert.Equal(new ClassificationExample("A man sleeps.", "A man is awake.", 0) { Line = 1 }, data.Examples[0]);
        Assert.Equal(["contradiction"], data.Labels!.Names);
    }

    [Fact]
    public void A_given_format_overrides_detection_and_null_input_reads_as_empty()
    {
        // Has text+label, but read as plain text on request; an instruction row with "input": null has no input.
        var path = _files.Write("t.jsonl", "{\"text\": \"hello\", \"label\": 3}\n");
        var data = DataReader.Read(path, new DataReadOptions { Format = DataFormat.Text });
        Assert.Equal(new TextExample("hello") { Line = 1 }, data.Examples[0]);
        Assert.Null(data.Labels);
        var alpaca = _files.Write("a.jsonl", "{\"instruction\": \"i\", \"input\": null, \"output\": \"o\"}\r\n");
        Assert.Equal(new InstructionExample("i", "", "o") { Line = 1 }, DataReader.Read(alpaca).Examples[0]);
    }

    [Fact]
    public void Fixed_label_names_map_names_and_reject_unknown_ones()
    {
        var path = _files.Write("v.jsonl", "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": \"neutral\"}\n");
        var options = new DataReadOptions { LabelNames = ["neg", "pos"] };
        var e = Assert.Throws<DataFileException>(() => DataReader.Read(path, options));
        Assert.Equal(2, e.Line);
        Assert.Contains("\"neutral\" is not one of the classes neg, pos", e.Message);
        var data = DataReader.Read(path, options with { SkipBadRows = true });
        Assert.Equal(1, ((ClassificationExample)data.Examples.Single()).Label);
    }

    [Fact]
    public void Label_names_get_ids_in_ordinal_order_whatever_the_row_order()
    {
        var path = _files.Write("l.jsonl", "{\"text\": \"a\", \"label\": \"zebra\"}\n{\"text\": \"b\", \"label\": \"apple\"}\n{\"text\": \"c\", \"label\": \"mango\"}\n{\"text\": \"d\", \"label\": \"apple\"}\n");
        var data = DataReader.Read(path);
        Assert.Equal(["apple", "mango", "zebra"], data.Labels!.Names);
        Assert.Equal([2, 0, 1, 0], data.Examples.Cast<ClassificationExample>().Select(e => e.Label));
    }
}
