using PeftSharp.Models;

namespace PeftSharp.Tests.Models;

public class ModelConfigTests
{
    [Fact]
    public void Eos_token_id_reads_as_int_or_list()
    {
        Assert.Equal([2], ModelConfig.Parse("""{"model_type":"llama","eos_token_id":2}""").EosTokenIds);
        Assert.Equal([1, 2], ModelConfig.Parse("""{"model_type":"llama","eos_token_id":[1,2]}""").EosTokenIds);
        Assert.Empty(ModelConfig.Parse("""{"model_type":"llama"}""").EosTokenIds);
    }

    [Fact]
    public void Num_labels_follows_id2label_then_num_labels_then_two()
    {
        Assert.Equal(3, ModelConfig.Parse("""{"model_type":"bert","id2label":{"0":"a","1":"b","2":"c"}}""").NumLabels);
        Assert.Equal(5, ModelConfig.Parse("""{"model_type":"bert","num_labels":5}""").NumLabels);
        Assert.Equal(2, ModelConfig.Parse("""{"model_type":"bert"}""").NumLabels);
        var overridden = ModelConfig.Parse("""{"model_type":"bert","id2label":{"0":"a","1":"b","2":"c"}}""").With("num_labels", 4);
        Assert.Equal(4, overridden.NumLabels);
    }

    [Fact]
    public void Gpt2_aliases_give_the_shared_sizes()
    {
        var c = ModelConfig.Parse("""{"model_type":"gpt2","n_embd":64,"n_layer":2,"vocab_size":256}""");
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(2, c.NumHiddenLayers);
        Assert.Equal(256, c.VocabSize);
    }

    [Fact]
    public void Wrongly_typed_or_missing_keys_are_named()
    {
        var c = ModelConfig.Parse("""{"model_type":"llama","hidden_size":"big","rope_theta":"x"}""", "cfg.json");
        Assert.Contains("'hidden_size'", Assert.Throws<ConfigException>(() => c.RequireInt("hidden_size")).Message);
        Assert.Contains("'rope_theta'", Assert.Throws<ConfigException>(() => c.GetDouble("rope_theta", 1)).Message);
        Assert.Contains("'num_attention_heads' is missing", Assert.Throws<ConfigException>(() => c.RequireInt("num_attention_heads")).Message);
        Assert.Contains("model_type", Assert.Throws<ConfigException>(() => ModelConfig.Parse("{}")).Message);
        Assert.Throws<ConfigException>(() => ModelConfig.Parse("[1]"));
    }

    [Fact]
    public void Unsupported_rope_type_is_a_config_error_naming_it()
    {
        var c = ModelConfig.Parse("""
            {"model_type":"llama","architectures":["LlamaForCausalLM"],"vocab_size":16,"hidden_size":8,"intermediate_size":16,
             "num_hidden_layers":1,"num_attention_heads":2,"rope_scaling":{"rope_type":"longrope","factor":4}}
            """);
        var e = Assert.Throws<ConfigException>(() => AutoModel.FromConfig(c));
        Assert.Contains("longrope", e.Message);
        Assert.Contains("llama3", e.Message);
    }
}
